"""The database goes away and comes back; web crashes and comes back. nginx and web recover by
themselves: no restart of anything that did not fail, no reload. Each test breaks its own
stack."""

import os
import signal
import time

import pytest

from tests.harness.polling import wait_until
from tests.stack.support import Stack, boot, record

# Each bound below is one of the stack's timeouts plus this margin, for a noisy 2-core machine
# (scheduling delays, Docker's userland proxy, the test's own HTTP client).
MARGIN_S = 5
# Django's DATABASE_CONNECT_TIMEOUT (5 s) bounds /readyz while the database is down.
READYZ_WHILE_DOWN_BOUND_S = 5 + MARGIN_S
RECOVERY_BOUND_S = 60
# nginx's proxy_connect_timeout (3 s) bounds an answer while web is gone.
GATEWAY_ERROR_BOUND_S = 3 + MARGIN_S


@pytest.fixture
def stack(compose_project, free_port) -> Stack:
    return boot(compose_project, free_port())


def started_at(stack: Stack, service: str) -> tuple[str, str, int]:
    state = stack.inspect(service)
    return state["Id"], state["State"]["StartedAt"], state["RestartCount"]


def test_database_stopped_then_started(stack):
    web_before, nginx_before = started_at(stack, "web"), started_at(stack, "nginx")
    assert stack.get("/readyz", https=False).status_code == 200

    stack.project.compose("stop", "db")
    try:
        asked = time.monotonic()
        ready = stack.get("/readyz", host="10.0.0.9", https=False)
        assert time.monotonic() - asked < READYZ_WHILE_DOWN_BOUND_S
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        # Liveness does not depend on the database: nothing restarts web for an outage.
        assert stack.get("/healthz", https=False).status_code == 200
        assert stack.get("/nginx-healthz", https=False).status_code == 200
        assert stack.get("/api/cats/").status_code >= 500
    finally:
        stack.project.compose("start", "db")

    came_back = time.monotonic()
    wait_until(
        lambda: stack.get("/readyz", https=False).status_code == 200,
        RECOVERY_BOUND_S,
        what="/readyz 200 after the database started",
    )
    record("readyz back after db start", {"seconds": round(time.monotonic() - came_back, 1)})
    assert stack.get("/api/cats/").status_code == 200
    assert started_at(stack, "web") == web_before
    assert started_at(stack, "nginx") == nginx_before


def test_web_killed_nginx_answers_quickly_then_recovers(stack):
    nginx_before = started_at(stack, "nginx")
    web_id, _, restarts = started_at(stack, "web")
    # A crash, as the kernel's OOM killer would do it: SIGKILL to the container's PID 1.
    os.kill(stack.inspect("web")["State"]["Pid"], signal.SIGKILL)
    killed = time.monotonic()

    answers = []
    while time.monotonic() - killed < RECOVERY_BOUND_S:
        asked = time.monotonic()
        status = stack.get("/api/cats/").status_code
        answers.append((status, time.monotonic() - asked))
        if status == 200:
            break
        time.sleep(0.2)
    back_after = time.monotonic() - killed
    errors = [(status, seconds) for status, seconds in answers if status != 200]
    record(
        "web killed",
        {
            "back_after_s": round(back_after, 1),
            "gateway_errors": len(errors),
            "slowest_error_s": round(max((s for _, s in errors), default=0), 2),
        },
    )
    assert answers[-1][0] == 200, answers
    assert errors, "the kill went unnoticed"
    assert {status for status, _ in errors} <= {502, 503, 504}
    assert max(seconds for _, seconds in errors) < GATEWAY_ERROR_BOUND_S
    # Docker's restart policy brought the same container back; nginx followed it alone.
    assert started_at(stack, "web")[0] == web_id
    assert started_at(stack, "web")[2] == restarts + 1
    assert started_at(stack, "nginx") == nginx_before
