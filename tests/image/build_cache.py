"""Rebuilding the image after a code change, and reading from BuildKit's log what was redone.

Shared by tests/image/test_image.py (the regression test) and tests/benchmarks/image_build.py
(the timing): both copy the build context, change one line of application code and build again.
"""

import re
import shutil
import time
from pathlib import Path

from tests.harness import REPO
from tests.harness.docker import DockerError, docker
from tests.harness.tracked import tracked_files

CODE_FILE = "app/cats/views.py"
# The two steps that download and install requirements (builder, then runtime).
DEPENDENCY_STEPS = ("pip wheel", "pip --python /opt/venv/bin/python install")
BUILD_TIMEOUT_S = 900


def copy_build_context(destination: Path) -> Path:
    """The project's files as git lists them (the .dockerignore picks from those)."""
    for name in tracked_files(REPO):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def change_code(context: Path) -> None:
    code = context / CODE_FILE
    code.write_text(code.read_text() + f"\n# rebuilt at {time.time()}\n")


def build(context: Path, tag: str) -> tuple[float, str]:
    """Build with BuildKit's plain log; (seconds, log)."""
    started = time.monotonic()
    result = docker(
        "build", "--progress=plain", "--tag", tag, str(context),
        check=False, timeout=BUILD_TIMEOUT_S,
    )  # fmt: skip
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-30:])
        raise DockerError(f"docker build of {tag} exited {result.returncode}:\n{tail}")
    return time.monotonic() - started, result.stderr


def step_lines(log: str, instruction: str) -> list[str]:
    """The log's lines for the step whose instruction contains `instruction`, e.g.
    ['#9 [runtime 3/10] RUN ... pip ... install ...', '#9 CACHED']."""
    pattern = rf"^(#\d+) \[[^\]]+\] .*{re.escape(instruction)}"
    numbers = set(re.findall(pattern, log, re.MULTILINE))
    return [line for line in log.splitlines() if line.split(" ", 1)[0] in numbers]


def was_cached(log: str, instruction: str) -> bool:
    lines = step_lines(log, instruction)
    if not lines:
        raise AssertionError(f"no build step runs {instruction!r}:\n{log}")
    return any(line.endswith(" CACHED") for line in lines)
