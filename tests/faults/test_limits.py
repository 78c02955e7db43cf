"""Per-client request-rate and connection limits, and header size limits, enforced by nginx
before a request reaches gunicorn. The limits are kept per real client: behind the trusted load
balancer, per X-Forwarded-For address; from anywhere else, per peer, whatever it claims.

Each test exhausts a limit or needs a full one: each boots a stack of its own."""

import math
import select
import socket
import time
import uuid

from tests.harness.polling import wait_until
from tests.stack.support import (
    CURL_IMAGE,
    OUTSIDER_ADDRESS,
    SITE_HOST,
    Stack,
    boot,
    never_reached_web,
    public_network,
)

# A low rate, so that even a slow loop outruns it; every count below is bounded by the
# time the loop took, never by how fast it ran.
RATE, BURST = 1, 5
LOW_RATE = {"NGINX_RATE_LIMIT": str(RATE), "NGINX_RATE_BURST": str(BURST)}
LOOP_BOUND_S = 60
RECOVERY_BOUND_S = 15
# nginx refuses a request over the connection limit as soon as its header is in.
ANSWER_WAIT_S = 0.5


def most_passing(elapsed_s: float) -> int:
    """Requests the limit can let through in `elapsed_s`: the burst, the first request, and
    what the rate refills meanwhile (one more for rounding at either end)."""
    return BURST + 1 + math.ceil(elapsed_s * RATE) + 1


def until_limited(stack: Stack, **headers: str) -> tuple[list[int], float]:
    """Request the app until the first 429: (the statuses, the seconds it took)."""
    statuses: list[int] = []
    started = time.monotonic()
    while time.monotonic() - started < LOOP_BOUND_S:
        statuses.append(stack.get("/api/cats/", headers=headers).status_code)
        if statuses[-1] == 429:
            return statuses, time.monotonic() - started
    raise AssertionError(f"no 429 within {LOOP_BOUND_S}s: {statuses}")


def test_request_rate_limit_answers_429(compose_project, free_port):
    stack = boot(compose_project, free_port(), env=LOW_RATE)
    statuses, elapsed = until_limited(stack)
    assert set(statuses[:-1]) == {200}
    assert BURST + 1 <= len(statuses) - 1 <= most_passing(elapsed), (statuses, elapsed)

    # The bucket is empty now, yet static files pass: a page load fetches many at once.
    assert {stack.get("/static/admin/css/base.css").status_code for _ in range(40)} == {200}
    # The limit is a rate, not a ban.
    wait_until(
        lambda: stack.get("/api/cats/").status_code == 200,
        RECOVERY_BOUND_S,
        interval=0.2,
        what="a request through again",
    )


def slow_upload(port: int) -> socket.socket:
    """A request nginx is busy with: its header is in, its body still coming."""
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.sendall(
        f"POST /cats/new/ HTTP/1.1\r\nHost: {SITE_HOST}\r\nContent-Length: 50000\r\n\r\n".encode()
    )
    return client


def uploads_in_progress(port: int, count: int) -> list[socket.socket]:
    """`count` slow uploads nginx is busy with. Right after boot one was once refused (an
    earlier request of this client still counted against the limit): it is replaced."""
    busy: list[socket.socket] = []
    started = time.monotonic()
    while len(busy) < count:
        assert time.monotonic() - started < LOOP_BOUND_S, f"only {len(busy)} uploads accepted"
        client = slow_upload(port)
        answered, _, _ = select.select([client], [], [], ANSWER_WAIT_S)
        if answered:
            client.close()
        else:
            busy.append(client)
    return busy


def test_connection_limit_answers_429(compose_project, free_port):
    # The rate limit is lifted, so a 429 here can only be the connection limit's.
    stack = boot(
        compose_project,
        free_port(),
        env={"NGINX_CONN_LIMIT": "3", "NGINX_RATE_LIMIT": "10000", "NGINX_RATE_BURST": "10000"},
    )
    busy = uploads_in_progress(stack.port, 3)
    try:
        wait_until(
            lambda: stack.get("/api/cats/").status_code == 429,
            RECOVERY_BOUND_S,
            interval=0.2,
            what="429 with 3 requests in progress",
        )
    finally:
        for client in busy:
            client.close()
    wait_until(
        lambda: stack.get("/api/cats/").status_code == 200,
        RECOVERY_BOUND_S,
        interval=0.2,
        what="200 once the 3 requests are gone",
    )


def test_oversized_headers_are_refused_before_gunicorn(compose_project, free_port):
    stack = boot(compose_project, free_port())
    marker = f"/oversized-{uuid.uuid4().hex}/"
    one_huge_header = stack.get(marker, headers={"X-Big": "a" * 9000})
    assert one_huge_header.status_code == 400
    assert "Request Header Or Cookie Too Large" in one_huge_header.text
    many_headers = {f"X-Filler-{i}": "b" * 7000 for i in range(6)}
    assert stack.get(marker, headers=many_headers).status_code == 400
    too_long = stack.get(f"{marker}?q={'c' * 9000}")
    assert too_long.status_code == 414
    # (A request line too long to parse is logged without its path: found by its request id.)
    lines = stack.nginx_lines(lambda r: r["path"] == marker, count=2)
    lines += stack.nginx_lines(lambda r: r["request_id"] == too_long.headers["X-Request-ID"])
    assert [r["status"] for r in lines] == [400, 400, 414]
    assert all(never_reached_web(r) for r in lines), lines
    # Ordinary requests with ordinary cookies are fine.
    assert stack.get("/api/cats/", headers={"Cookie": "a=" + "d" * 3000}).status_code == 200


def test_limits_are_kept_per_real_client(compose_project, free_port, containers, run_id):
    """Behind the trusted hop (these tests' address), each X-Forwarded-For address has a
    bucket of its own; from outside the trusted ranges, a changing X-Forwarded-For does not
    buy a new one."""
    stack = boot(compose_project, free_port(), env=LOW_RATE)

    statuses, _ = until_limited(stack, **{"X-Forwarded-For": "203.0.113.1"})
    assert statuses[-1] == 429
    started = time.monotonic()
    other = [
        stack.get("/api/cats/", headers={"X-Forwarded-For": "203.0.113.2"}).status_code
        for _ in range(BURST + 1)
    ]
    # A shared bucket would have let through only what it refilled since the 429.
    assert time.monotonic() - started < (BURST + 1) / RATE, "too slow to tell the buckets apart"
    assert other == [200] * (BURST + 1)
    addresses = {r["remote_addr"] for r in stack.nginx_lines(lambda r: r["status"] == 429)}
    assert addresses == {"203.0.113.1"}

    with public_network(stack, run_id) as (network, nginx_address):
        loop = (
            "date +%s.%N; for i in $(seq 1 20); do curl --silent --output /dev/null "
            "--write-out '%{http_code} ' --header 'Host: localhost' "
            '--header "X-Forwarded-For: 192.0.2.$i" http://$0:8080/api/cats/; done; echo; '
            "date +%s.%N"
        )
        result = containers.run_once(
            CURL_IMAGE, "-c", loop, nginx_address,
            options=["--network", network, "--ip", OUTSIDER_ADDRESS, "--entrypoint", "sh"],
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    started_at, codes, ended_at = result.stdout.strip().splitlines()
    spoofed = [int(code) for code in codes.split()]
    assert len(spoofed) == 20
    passed = spoofed.count(200)
    assert passed <= most_passing(float(ended_at) - float(started_at)), spoofed
    outsiders = stack.nginx_lines(lambda r: r["peer"] == OUTSIDER_ADDRESS, count=20)
    assert {r["remote_addr"] for r in outsiders} == {OUTSIDER_ADDRESS}
