"""Restart the Docker daemon the tests run on, as a reboot of the VM restarts it: every
container stops with the daemon and the daemon starts what its restart policies say.

Only an engine the tests may restart: the private one tests/run provisioned (its dockerd under
TESTS_ENGINE_DIR, started by tests/harness/start-engine, which starts it again), or, as root on
a machine with systemd, docker.service. tests/run has already refused an engine that runs
containers it did not make (tests/harness/engine_guard.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.harness import REPO
from tests.harness.docker import engine_problem

STOP_BOUND_S = 120
START_BOUND_S = 90
ENGINE_DIR = Path(os.environ.get("TESTS_ENGINE_DIR", "/opt/test-engine"))


class CannotRestart(RuntimeError):
    """This engine is not one the tests may restart (the reason says why)."""


def private_daemon() -> int | None:
    """The pid of the private engine's dockerd, when that is what runs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            executable = os.readlink(entry / "exe")
        except OSError:
            continue
        if executable.startswith(str(ENGINE_DIR)) and executable.endswith("/dockerd"):
            return int(entry.name)
    return None


def restart_problem() -> str | None:
    """None when the daemon can be restarted here, else why not."""
    if os.geteuid() != 0:
        return "restarting the Docker daemon needs root"
    if private_daemon() is None and shutil.which("systemctl") is None:
        return "neither the tests' private engine nor systemd's docker.service runs here"
    return None


def restart() -> float:
    """Stop the daemon (its containers stop with it), start it again; the seconds the daemon
    was away, until it answers again."""
    problem = restart_problem()
    if problem is not None:
        raise CannotRestart(problem)
    stopped = time.monotonic()
    pid = private_daemon()
    if pid is None:
        subprocess.run(["systemctl", "restart", "docker"], check=True, timeout=STOP_BOUND_S)
    else:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_BOUND_S
        while Path(f"/proc/{pid}").exists():
            if time.monotonic() > deadline:
                raise CannotRestart(f"dockerd (pid {pid}) did not stop within {STOP_BOUND_S} s")
            time.sleep(0.2)
        subprocess.run(
            [str(REPO / "tests/harness/start-engine")], check=True, timeout=START_BOUND_S,
            capture_output=True,
        )  # fmt: skip
    deadline = time.monotonic() + START_BOUND_S
    while engine_problem() is not None:
        if time.monotonic() > deadline:
            raise CannotRestart(f"the daemon did not answer within {START_BOUND_S} s")
        time.sleep(0.2)
    return time.monotonic() - stopped
