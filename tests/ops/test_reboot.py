"""A reboot (docs/operations.md, After a reboot): the Docker daemon stops with a stack up, under
writes, and starts again. The engine starts every container again by itself, in no order of
compose's; the site serves again within a bound, `/readyz` never says ready while a page fails,
no acknowledged write is lost, and the backup timer's catch-up run, started the moment the daemon
answers (as systemd starts it at boot), waits for the database and succeeds."""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.harness import ci
from tests.harness.docker import clean_env
from tests.harness.engine_restart import restart, restart_problem
from tests.harness.load import Threads
from tests.harness.measurements import record
from tests.ops.traffic import HEADERS, written_once
from tests.stack.support import Client

# The site serving again after the daemon answers: web's start (it waits for the database),
# nginx's; the check fails above this.
BACK_BOUND_S = 120
POLL_S = 0.1
# Serving again means this long with every page answered.
STEADY_S = 3
WRITE_PAUSE_S = 0.1
WRITES_BEFORE_S = 3


@pytest.fixture(autouse=True)
def restartable() -> None:
    problem = restart_problem()
    if problem is not None:
        if ci():
            pytest.fail(f"CI is set and this test cannot run: {problem}", pytrace=False)
        pytest.skip(problem)


def status(url: str) -> int | str:
    try:
        return requests.get(url, headers=HEADERS, timeout=5).status_code
    except requests.RequestException as error:
        return type(error).__name__


def test_a_reboot_brings_the_site_back_by_itself(ops_project, tmp_path):
    ops_project.ops("deploy", "a", "--build")
    ops_project.create_superuser()
    written: list[str] = []
    writer = Client(ops_project.site)
    writer.log_in()

    def write(stop: threading.Event) -> None:
        while not stop.is_set():
            name = f"before-reboot-{uuid.uuid4().hex[:8]}"
            answer = writer.post_form("/cats/new/", {"name": name, "breed": "Tabby", "age": "1"})
            if answer.status_code == 302:
                written.append(name)
            time.sleep(WRITE_PAUSE_S)

    with Threads(write):
        time.sleep(WRITES_BEFORE_S)
    assert written

    timer = ops_project.ops("schedule", "--unit-dir", str(tmp_path), "--no-enable")
    assert "not enabled" in timer.stdout
    unit = (tmp_path / f"{ops_project.name}-backup.service").read_text()
    exec_start = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))
    workdir = Path(re.search(r"^WorkingDirectory=(.*)$", unit, re.M).group(1))

    away_s = restart()
    answered_at = time.monotonic()
    catch_up = subprocess.Popen(
        exec_start, cwd=workdir, env=clean_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    # Pairs of (readiness, then a page) until pages have answered for STEADY_S.
    samples: list[tuple[float, int | str, int | str]] = []
    steady_since = None
    while time.monotonic() - answered_at < BACK_BOUND_S:
        at = time.monotonic() - answered_at
        ready, page = status(ops_project.site.url("/readyz")), status(ops_project.site.url("/"))
        samples.append((at, ready, page))
        steady_since = (steady_since or at) if page == 200 else None
        if steady_since is not None and at - steady_since >= STEADY_S:
            break
        time.sleep(POLL_S)
    assert steady_since is not None, samples[-10:]
    backup = catch_up.communicate(timeout=600)[0]

    ready_too_early = [(at, page) for at, ready, page in samples if ready == 200 and page != 200]
    first_page = min(at for at, _, page in samples if page == 200)
    services = ops_project.compose("ps", "--format", "{{.Service}} {{.State}} {{.Health}}")
    record("reboot", {
        "daemon_away_s": round(away_s, 1), "site_back_after_daemon_s": round(first_page, 1),
        "ready_while_a_page_failed": len(ready_too_early), "samples": len(samples),
        "acknowledged_writes": len(written),
        "backup_waited_s": float(re.search(r"healthy after (\d+) s", backup).group(1))
        if "healthy after" in backup else None,
    })  # fmt: skip
    assert ready_too_early == [], ready_too_early
    assert sorted(services.stdout.splitlines()) == [
        "db running healthy",
        "nginx running healthy",
        "photos-backup running healthy",
        "web running healthy",
    ], services.stdout
    assert written_once(ops_project.site, written) == {}
    assert catch_up.returncode == 0, backup
    assert re.search(r"the db service was healthy after \d+ s", backup), backup
