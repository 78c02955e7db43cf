"""Slow clients (slowloris) are cut off by nginx's timeouts and never reach gunicorn, while
everyone else is served as usual."""

import socket
import threading
import time

from tests.stack.support import SITE_HOST

SLOW_CLIENTS = 20
# nginx's client_header_timeout and client_body_timeout (nginx/templates/site.conf.template).
NGINX_TIMEOUT_S = 10
TRICKLE_EVERY_S = 2
LOOP_BOUND_S = 25


def open_slow_client(port: int, first_bytes: bytes) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=LOOP_BOUND_S)
    client.sendall(first_bytes)
    return client


def seconds_until_closed(client: socket.socket, started: float, trickle: bytes | None) -> float:
    """Keep the request unfinished (sending `trickle` now and then) until the server closes
    the connection or answers; return when that happened. Bounded by LOOP_BOUND_S."""
    client.settimeout(TRICKLE_EVERY_S)
    while time.monotonic() - started < LOOP_BOUND_S:
        try:
            answer = client.recv(4096)
        except TimeoutError:
            if trickle:
                try:
                    client.sendall(trickle)
                except OSError:
                    return time.monotonic() - started
            continue
        except OSError:
            return time.monotonic() - started
        # Closed (b"") or answered: either way the request is over for the client.
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
        return time.monotonic() - started
    raise AssertionError(f"a slow client was still connected after {LOOP_BOUND_S}s")


def measure_slow_clients(shared_stack, first_bytes: bytes, trickle: bytes | None):
    """(seconds each slow client lasted, latencies of normal requests meanwhile)."""
    started = time.monotonic()
    clients = [open_slow_client(shared_stack.port, first_bytes) for _ in range(SLOW_CLIENTS)]
    lasted: list[float] = []

    def watch(client: socket.socket) -> None:
        try:
            lasted.append(seconds_until_closed(client, started, trickle))
        finally:
            client.close()

    watchers = [threading.Thread(target=watch, args=(c,)) for c in clients]
    for watcher in watchers:
        watcher.start()
    latencies = []
    while any(w.is_alive() for w in watchers):
        request_started = time.monotonic()
        response = shared_stack.get("/api/cats/")
        assert response.status_code == 200
        latencies.append(time.monotonic() - request_started)
        time.sleep(0.5)
    for watcher in watchers:
        watcher.join()
    return lasted, latencies


def test_slow_headers_are_cut_off(shared_stack):
    lasted, latencies = measure_slow_clients(
        shared_stack,
        f"GET /api/cats/ HTTP/1.1\r\nHost: {SITE_HOST}\r\n".encode(),
        trickle=b"X-Slow: still-typing\r\n",
    )
    assert len(lasted) == SLOW_CLIENTS
    # Trickling does not help: the whole header must arrive within the timeout.
    assert all(NGINX_TIMEOUT_S - 1 <= s <= NGINX_TIMEOUT_S + 4 for s in lasted), lasted
    assert max(latencies) < 2, latencies


def test_slow_bodies_are_cut_off_before_gunicorn(shared_stack):
    posts_before = shared_stack.logs("web").count('"POST /cats/new/')
    lasted, latencies = measure_slow_clients(
        shared_stack,
        (
            f"POST /cats/new/ HTTP/1.1\r\nHost: {SITE_HOST}\r\nX-Forwarded-Proto: https\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
            "name=slow"
        ).encode(),
        trickle=None,
    )
    assert len(lasted) == SLOW_CLIENTS
    assert all(NGINX_TIMEOUT_S - 1 <= s <= NGINX_TIMEOUT_S + 4 for s in lasted), lasted
    assert max(latencies) < 2, latencies
    # nginx buffers whole bodies: gunicorn never saw these requests, so no thread waited.
    assert shared_stack.logs("web").count('"POST /cats/new/') == posts_before
    statuses = [r["status"] for r in shared_stack.json_logs("nginx") if r["method"] == "POST"]
    assert statuses.count(408) == SLOW_CLIENTS
