"""Per-client request-rate and connection limits, enforced by nginx before a request reaches
gunicorn, and the request size limits of the whole stack. The per-client limits are kept per
real client: behind the trusted load balancer, per X-Forwarded-For address; from anywhere else,
per peer, whatever it claims. The size limits are nginx's: whatever it passes on, gunicorn and
Django answer as the app, and what it refuses is refused by nginx, logged with a request id.

A test that exhausts a per-client limit or needs a full one boots a stack of its own; the
size-limit tests only read, and share the module's stack."""

import http.client
import math
import select
import socket
import time
import uuid

from tests.harness.polling import wait_until
from tests.stack.support import (
    CURL_IMAGE,
    OUTSIDER_ADDRESS,
    REQUEST_TIMEOUT_S,
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


def test_oversized_headers_are_refused_before_gunicorn(shared_stack):
    stack = shared_stack
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


# nginx's limits (nginx/templates/site.conf.template, "Request size"): a request line or header
# line of at most one 8k buffer less its CRLF, at most 1000 header lines.
LONGEST_LINE = 8 * 1024 - 2
MAX_HEADERS = 1000


def exact_request(
    stack: Stack, target: str, headers: list[tuple[str, str]]
) -> tuple[int, dict[str, str], str]:
    """`GET target HTTP/1.1` with exactly these header lines, nothing added: (status, response
    headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=REQUEST_TIMEOUT_S)
    try:
        connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


BASE_HEADERS = [("Host", SITE_HOST), ("X-Forwarded-Proto", "https")]


def target_for_line(length: int) -> str:
    """An API request whose request line (`GET <target> HTTP/1.1`) is `length` bytes."""
    prefix = "/api/cats/?q="
    return prefix + "c" * (length - len(f"GET {prefix} HTTP/1.1"))


def answered_by_the_app(stack: Stack, request_id: str) -> dict:
    """web's access line for the request (gunicorn answered it as the app: Django's answer)."""
    [line] = stack.json_lines(
        "web", lambda r: r.get("request_id") == request_id and r["logger"] == "gunicorn.access"
    )
    return line


def refused_by_nginx(stack: Stack, request_id: str, status: int) -> None:
    [line] = stack.nginx_lines(lambda r: r["request_id"] == request_id)
    assert line["status"] == status
    assert never_reached_web(line), line


def test_every_request_line_nginx_takes_reaches_the_app(shared_stack):
    """gunicorn used to cap the line at 4094 bytes and answer longer ones with its own 414
    page ("Request Line is too large (7026 > 4094)"), logged without a request id."""
    for length in (7 * 1024, LONGEST_LINE):
        status, headers, body = exact_request(shared_stack, target_for_line(length), BASE_HEADERS)
        assert status == 200, (length, body[:200])
        assert answered_by_the_app(shared_stack, headers["x-request-id"])["status"] == 200
    status, headers, body = exact_request(
        shared_stack, target_for_line(LONGEST_LINE + 1), BASE_HEADERS
    )
    assert status == 414
    assert "Request Line is too large" not in body
    refused_by_nginx(shared_stack, headers["x-request-id"], 414)


def test_every_header_line_nginx_takes_reaches_the_app(shared_stack):
    """gunicorn counts the CRLF in its 8190-byte field limit, nginx does not."""
    value = "d" * (LONGEST_LINE - len("X-Long: "))
    status, headers, body = exact_request(
        shared_stack, "/api/cats/", [*BASE_HEADERS, ("X-Long", value)]
    )
    assert status == 200, body[:200]
    answered_by_the_app(shared_stack, headers["x-request-id"])
    status, headers, _ = exact_request(
        shared_stack, "/api/cats/", [*BASE_HEADERS, ("X-Long", value + "d")]
    )
    assert status == 400
    refused_by_nginx(shared_stack, headers["x-request-id"], 400)


def test_as_many_headers_as_nginx_takes_reach_the_app(shared_stack):
    """gunicorn used to refuse more than 100 header lines (431, its own page); nginx takes
    1000. 150 is what a client sends with many cookies split, or a chain of proxies."""
    for count in (150, MAX_HEADERS):
        fillers = [(f"X-Filler-{i}", "e") for i in range(count - len(BASE_HEADERS))]
        status, headers, body = exact_request(shared_stack, "/api/cats/", [*BASE_HEADERS, *fillers])
        assert status == 200, (count, body[:200])
        answered_by_the_app(shared_stack, headers["x-request-id"])
    status, headers, _ = exact_request(
        shared_stack, "/api/cats/", [*BASE_HEADERS, *fillers, ("X-Filler-last", "e")]
    )
    assert status == 400
    refused_by_nginx(shared_stack, headers["x-request-id"], 400)


def test_too_many_query_parameters_are_a_warning_not_an_error(shared_stack):
    """Django refuses more than 1000 parameters (TooManyFieldsSent, 400) and logged it at ERROR
    with a traceback: any client could set off error alerts."""
    query = "&".join(["p"] * 1020)  # Django counts a field per separator, value or not
    status, headers, _ = exact_request(shared_stack, f"/api/cats/?{query}", BASE_HEADERS)
    assert status == 400
    request_id = headers["x-request-id"]
    answered_by_the_app(shared_stack, request_id)
    lines = [r for r in shared_stack.json_logs("web") if r.get("request_id") == request_id]
    [warning] = [r for r in lines if r["logger"] == "django.security.TooManyFieldsSent"]
    assert warning["level"] == "WARNING"
    assert [r for r in lines if r["level"] in ("ERROR", "CRITICAL")] == []
    assert [r for r in lines if "exception" in r or "Traceback" in r["message"]] == []
