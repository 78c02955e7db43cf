"""Per-client request-rate and connection limits, and header size limits, enforced by nginx
before a request reaches gunicorn."""

import socket
import time
import uuid

from tests.stack.support import SITE_HOST

# Low limits, so a handful of requests shows them (the defaults are 20/s, burst 40, 50).
STACK_ENV = {"NGINX_RATE_LIMIT": "5", "NGINX_RATE_BURST": "5", "NGINX_CONN_LIMIT": "3"}


def test_request_rate_limit_answers_429(shared_stack):
    statuses = [shared_stack.get("/api/cats/").status_code for _ in range(40)]
    assert set(statuses) == {200, 429}
    # The burst (5) plus what the rate (5/s) refills while the loop runs pass.
    assert 6 <= statuses.count(200) <= 25, statuses
    assert statuses[:6] == [200] * 6
    # Static files are not rate limited: a page load fetches many at once.
    assert {shared_stack.get("/static/admin/css/base.css").status_code for _ in range(40)} == {200}
    # The limit is a rate, not a ban.
    time.sleep(2)
    assert shared_stack.get("/api/cats/").status_code == 200


def slow_upload(port: int) -> socket.socket:
    """A request nginx is busy with: its header is in, its body still coming."""
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.sendall(
        f"POST /cats/new/ HTTP/1.1\r\nHost: {SITE_HOST}\r\nContent-Length: 50000\r\n\r\n".encode()
    )
    return client


def test_connection_limit_answers_429(shared_stack):
    time.sleep(2)  # the rate limit's bucket refills after the previous test
    busy = [slow_upload(shared_stack.port) for _ in range(3)]
    try:
        time.sleep(0.5)
        assert shared_stack.get("/api/cats/").status_code == 429
    finally:
        for client in busy:
            client.close()
    time.sleep(0.5)
    assert shared_stack.get("/api/cats/").status_code == 200


def test_oversized_headers_are_refused_before_gunicorn(shared_stack):
    time.sleep(2)
    marker = f"/oversized-{uuid.uuid4().hex}/"
    one_huge_header = shared_stack.get(marker, headers={"X-Big": "a" * 9000})
    assert one_huge_header.status_code == 400
    assert "Request Header Or Cookie Too Large" in one_huge_header.text
    many_headers = {f"X-Filler-{i}": "b" * 7000 for i in range(6)}
    assert shared_stack.get(marker, headers=many_headers).status_code == 400
    assert shared_stack.get(f"{marker}?q={'c' * 9000}").status_code == 414
    assert marker not in shared_stack.logs("web")
    # (A request line too long to parse is logged without its path.)
    nginx = [r["status"] for r in shared_stack.json_logs("nginx") if r["path"] == marker]
    assert nginx == [400, 400]
    # Ordinary requests with ordinary cookies are fine.
    assert shared_stack.get("/api/cats/", headers={"Cookie": "a=" + "d" * 3000}).status_code == 200
