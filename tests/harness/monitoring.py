"""Prometheus' and Alertmanager's own checkers against monitoring/.

`run(command, ...)` runs a checker given as a command line: `promtool` or `amtool` on PATH by
default (Debian's prometheus, promtool and prometheus-alertmanager packages), or whatever
TESTS_PROMTOOL and TESTS_AMTOOL say, e.g. a `docker run` of the official image, for a runner
that has the image rather than the package. The rules' tests are written against Prometheus
2.53, the version the stack will run.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from tests.harness import REPO

MONITORING = REPO / "monitoring"
PROMETHEUS = MONITORING / "prometheus"
# Checker: (variable naming its command, default command, Debian package that has it).
CHECKERS = {
    "promtool": ("TESTS_PROMTOOL", "promtool", "promtool"),
    "amtool": ("TESTS_AMTOOL", "amtool", "prometheus-alertmanager"),
}


def command(checker: str) -> list[str]:
    variable, default, _ = CHECKERS[checker]
    return shlex.split(os.environ.get(variable) or default)


def missing(checker: str) -> str | None:
    """Why `checker` cannot run here, or None when it can."""
    variable, _, package = CHECKERS[checker]
    program = command(checker)[0]
    if shutil.which(program) is None:
        return (
            f"{program} is not on PATH: install Debian's {package} package, or set {variable} "
            f"to a command that runs {checker}"
        )
    return None


def run(checker: list[str], *args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*checker, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )
