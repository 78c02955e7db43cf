"""The database goes away and comes back; web crashes and comes back. nginx and web recover by
themselves: no restart of anything that did not fail, no reload. Each test breaks its own
stack."""

import os
import signal
import threading
import time

import pytest
import requests

from tests.harness.load import Threads
from tests.harness.measurements import record
from tests.harness.polling import wait_until
from tests.stack.support import REQUEST_TIMEOUT_S, Stack, boot

# Each bound below is one of the stack's timeouts plus this margin, for a noisy 2-core machine
# (scheduling delays, Docker's userland proxy, the test's own HTTP client).
MARGIN_S = 5
# Django's DATABASE_CONNECT_TIMEOUT (5 s) bounds /readyz while the database is down.
READYZ_WHILE_DOWN_BOUND_S = 5 + MARGIN_S
RECOVERY_BOUND_S = 60
# nginx's proxy_connect_timeout (3 s) bounds an answer while web is gone.
GATEWAY_ERROR_BOUND_S = 3 + MARGIN_S
# Long enough for the pool's doubling retry pauses (1, 2, 4, 8 s...) to pass the point where
# the database comes back, as they did before reconnect_timeout was set.
OUTAGE_S = 20
# Many more clients than web's workers (4 on this machine): every worker is asked to wait for
# the database at once, with requests queued behind them. With sync workers /healthz waits for
# the requests ahead of it in the kernel's queue, each held at most the pool's wait
# (DB_POOL_WAIT_S in config/settings.py, 0.25 s) while the database is away: 16 clients over 4
# workers is about 1 s in the worst case, half the bound below.
DATABASE_CLIENTS = 16
# "About a second" after PostgreSQL answers again, plus this machine's noise.
RECOVERY_AFTER_DB_BOUND_S = 2.5
# The promise: below what load balancers wait for a probe (HAProxy's default check timeout is
# its 2 s interval).
LIVENESS_BOUND_S = 2.0
LIVENESS_PAUSE_S = 0.2
# Every probe sent during the outage counts; were each as slow as the bound, this many would
# still fit in it.
MIN_LIVENESS_SAMPLES = int(OUTAGE_S / (LIVENESS_BOUND_S + LIVENESS_PAUSE_S))


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


@pytest.fixture
def loaded_stack(compose_project, free_port) -> Stack:
    # One address plays many visitors: the per-client limits are lifted.
    return boot(
        compose_project,
        free_port(),
        env={
            "NGINX_RATE_LIMIT": "100000",
            "NGINX_RATE_BURST": "100000",
            "NGINX_CONN_LIMIT": "1000",
        },
    )


def db_answers(stack: Stack) -> bool:
    probe = stack.project.exec(
        "db", "pg_isready", "--quiet", "--host=127.0.0.1", check=False
    )  # fmt: skip
    return probe.returncode == 0


def test_requests_succeed_a_second_after_the_database_and_liveness_never_waits(loaded_stack):
    stack = loaded_stack
    api: list[tuple[float, int | str]] = []
    # (sent at, seconds until answered); a probe with no answer counts as its whole timeout.
    liveness: list[tuple[float, float]] = []

    def ask_the_database(stop: threading.Event) -> None:
        session = requests.Session()
        while not stop.is_set():
            at = time.monotonic()
            try:
                status = session.get(
                    stack.url("/api/cats/"), headers={"Host": "localhost",
                    "X-Forwarded-Proto": "https"}, timeout=15,
                ).status_code  # fmt: skip
            except requests.RequestException as error:
                status = type(error).__name__
            api.append((at, status))
            if status != 200:
                time.sleep(0.05)

    def probe_liveness(stop: threading.Event) -> None:
        while not stop.is_set():
            asked = time.monotonic()
            try:
                answered = stack.get("/healthz", host="10.0.0.9", https=False).status_code == 200
            except requests.RequestException:
                answered = False
            took = time.monotonic() - asked
            liveness.append((asked, took if answered else max(took, REQUEST_TIMEOUT_S)))
            time.sleep(LIVENESS_PAUSE_S)

    with Threads(*[ask_the_database] * DATABASE_CLIENTS, probe_liveness):
        stack.project.compose("stop", "db")
        outage = (time.monotonic(), time.monotonic() + OUTAGE_S)
        time.sleep(OUTAGE_S)
        stack.project.compose("start", "db")
        back = wait_until(lambda: db_answers(stack) and time.monotonic(), 60, interval=0.1,
                          what="PostgreSQL answering")  # fmt: skip
        wait_until(
            lambda: any(at > back and status == 200 for at, status in api), 60, interval=0.1,
            what="a request served after the database came back",
        )  # fmt: skip
        time.sleep(RECOVERY_AFTER_DB_BOUND_S + 1)
    failed_after = [at - back for at, status in api if at > back and status != 200]
    print(
        "FAILURES",
        sorted(
            {(round(at - back, 1), status) for at, status in api if at > back - 1 and status != 200}
        )[-40:],
    )
    recovered_after = max(failed_after, default=0.0)
    # Every probe sent while the database was stopped, whenever it finished.
    outage_liveness = [took for asked, took in liveness if outage[0] <= asked < outage[1]]
    assert len(outage_liveness) >= MIN_LIVENESS_SAMPLES, outage_liveness
    record("requests after the database returned", {
        "last_failure_after_s": round(recovered_after, 2),
        "slowest_liveness_during_outage_s": round(max(outage_liveness), 2),
        "liveness_probes": len(outage_liveness), "requests": len(api),
    })  # fmt: skip
    assert max(outage_liveness) < LIVENESS_BOUND_S, sorted(outage_liveness)[-5:]
    assert recovered_after < RECOVERY_AFTER_DB_BOUND_S, failed_after[-5:]


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
