"""nginx follows web containers that are recreated (an update) or scaled, with no reload.

Each test recreates or scales web: each boots a stack of its own."""

import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest
import requests

from tests.harness.docker import docker
from tests.harness.load import Threads
from tests.harness.measurements import record
from tests.harness.polling import wait_until
from tests.stack.support import SITE_HOST, Stack, boot

# The load comes from one address (this host) standing in for many visitors behind the load
# balancer, so the per-client limits are lifted for these stacks.
STACK_ENV = {"NGINX_RATE_LIMIT": "100000", "NGINX_RATE_BURST": "100000"}
LOAD_THREADS = 4
PAUSE_BETWEEN_REQUESTS_S = 0.02
# nginx re-resolves web every second (resolver valid=1s); web healthy to nginx serving it again.
RECOVERY_BOUND_S = 10
# From the first failed request to the last: the old web's stop (requests in flight only) plus
# the new one's start (database check, migrations found applied, gunicorn up, health probe).
ERROR_WINDOW_BOUND_S = 15
STABLE_AFTER_S = 5
LOOP_BOUND_S = 120


@dataclass
class Load:
    """Bounded load loops through nginx: (monotonic time, status or exception name)."""

    stack: Stack
    path: str = "/api/cats/"
    results: list[tuple[float, object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.threads = Threads(*[self.loop] * LOAD_THREADS)
        self.started = time.monotonic()

    def loop(self, stop: threading.Event) -> None:
        session = requests.Session()
        headers = {"Host": SITE_HOST, "X-Forwarded-Proto": "https"}
        while not stop.is_set() and time.monotonic() - self.started < LOOP_BOUND_S:
            at = time.monotonic()
            try:
                outcome = session.get(self.stack.url(self.path), headers=headers, timeout=10)
                self.results.append((at, outcome.status_code))
            except requests.RequestException as error:
                self.results.append((at, type(error).__name__))
            time.sleep(PAUSE_BETWEEN_REQUESTS_S)

    def __enter__(self) -> "Load":
        self.threads.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.threads.__exit__(*exc)

    def failures(self) -> list[tuple[float, object]]:
        return [(at, outcome) for at, outcome in self.results if outcome != 200]

    def stable_since(self, since: float) -> bool:
        """Every request started after `since`, for STABLE_AFTER_S seconds, succeeded."""
        recent = [o for at, o in self.results if at > since]
        return (
            bool(recent)
            and time.monotonic() - since >= STABLE_AFTER_S
            and all(o == 200 for o in recent)
        )


@pytest.fixture
def stack(compose_project, free_port) -> Stack:
    return boot(compose_project, free_port(), env=STACK_ENV)


def health(stack: Stack, service: str) -> str:
    return stack.inspect(service)["State"]["Health"]["Status"]


def test_nginx_recovers_by_itself_after_web_is_recreated_under_load(stack):
    nginx_before = stack.inspect("nginx")
    web_before = stack.container("web")
    with Load(stack) as load:
        time.sleep(2)
        assert load.results
        assert not load.failures(), load.failures()[:5]
        recreate_started = time.monotonic()
        stack.project.compose("up", "--detach", "--force-recreate", "web")
        assert stack.container("web") != web_before
        wait_until(lambda: health(stack, "web") == "healthy", 120, what="web healthy")
        web_healthy = time.monotonic()
        try:
            wait_until(
                lambda: load.stable_since(max([web_healthy, *(at for at, _ in load.failures())])),
                RECOVERY_BOUND_S + STABLE_AFTER_S + 5,
                interval=0.2,
                what="only successes through nginx after web is healthy again",
            )
        except AssertionError as error:
            late = [
                (round(at - web_healthy, 2), o) for at, o in load.failures() if at > web_healthy
            ]
            raise AssertionError(
                f"{error}; failures after web healthy (s, outcome): {late[:40]}"
            ) from None

    failures = load.failures()
    outcomes = sorted({str(o) for _, o in failures})
    last_failure = max((at for at, _ in failures), default=web_healthy)
    first_failure = min((at for at, _ in failures), default=web_healthy)
    record(
        "recreate web under load",
        {
            "requests": len(load.results),
            "failed": len(failures),
            "failure_outcomes": outcomes,
            "error_window_s": round(last_failure - first_failure, 2),
            "recreate_to_web_healthy_s": round(web_healthy - recreate_started, 2),
            "last_failure_after_web_healthy_s": round(last_failure - web_healthy, 2),
        },
    )
    # nginx itself never failed a connection; the gap shows as gateway errors only.
    assert set(outcomes) <= {"502", "503", "504"}, outcomes
    assert last_failure - web_healthy < RECOVERY_BOUND_S
    assert last_failure - first_failure < ERROR_WINDOW_BOUND_S
    # ... and it recovered on its own: same container, never restarted or reloaded.
    nginx_after = stack.inspect("nginx")
    assert nginx_after["Id"] == nginx_before["Id"]
    assert nginx_after["State"]["StartedAt"] == nginx_before["State"]["StartedAt"]
    assert nginx_after["RestartCount"] == 0
    assert "reconfiguring" not in stack.logs("nginx")


def test_nginx_spreads_requests_over_scaled_web_containers(stack):
    stack.project.compose(
        "up", "--detach", "--wait", "--no-recreate", "--scale", "web=2", timeout=300
    )
    containers = stack.project.compose("ps", "--quiet", "web").stdout.split()
    assert len(containers) == 2

    def both_serve() -> bool:
        ids = {f"scale-{uuid.uuid4().hex}" for _ in range(20)}
        for request_id in ids:
            response = stack.get("/api/cats/", headers={"X-Request-ID": request_id})
            assert response.status_code == 200
        served = [
            sum(request_id in docker("logs", c).stdout for request_id in ids) for c in containers
        ]
        return all(served)

    # Within a few of the resolver's 1 s rounds, without a reload.
    wait_until(both_serve, RECOVERY_BOUND_S + 5, interval=1, what="both web containers serve")
    assert "reconfiguring" not in stack.logs("nginx")

    stack.project.compose("up", "--detach", "--wait", "--scale", "web=1", timeout=300)
    assert len(stack.project.compose("ps", "--quiet", "web").stdout.split()) == 1
    wait_until(
        lambda: all(stack.get("/api/cats/").status_code == 200 for _ in range(10)),
        RECOVERY_BOUND_S + 5,
        what="the remaining web container serves everything",
    )
