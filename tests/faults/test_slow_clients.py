"""Slow clients (slowloris) are cut off by nginx's timeouts and never reach gunicorn, while
everyone else is served as usual. A client that stops reading its response is cut off too.

The tests share a stack (conftest): the slow connections end within each test."""

import socket
import threading
import time
import uuid

from tests.harness import REPO
from tests.harness.base_images import dockerfile_base
from tests.harness.polling import wait_until
from tests.stack.support import SITE_HOST, never_reached_web

SLOW_CLIENTS = 20
# nginx's client_header_timeout, client_body_timeout and send_timeout
# (nginx/templates/site.conf.template).
NGINX_TIMEOUT_S = 10
TRICKLE_EVERY_S = 2
# How long a slow client may stay connected before the test calls it not cut off.
LOOP_BOUND_S = 25
PYTHON_IMAGE = dockerfile_base(REPO, "Dockerfile")  # the web image's base: already here


def open_slow_client(port: int, first_bytes: bytes) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=LOOP_BOUND_S)
    client.sendall(first_bytes)
    return client


def cut_off(client: socket.socket, started: float, trickle: bytes | None) -> bytes:
    """Keep the request unfinished (sending `trickle` now and then) until the server closes
    the connection or answers; return what it sent. Bounded by LOOP_BOUND_S."""
    client.settimeout(TRICKLE_EVERY_S)
    while time.monotonic() - started < LOOP_BOUND_S:
        try:
            return client.recv(4096)
        except TimeoutError:
            if trickle:
                try:
                    client.sendall(trickle)
                except OSError:
                    return b""
        except OSError:
            return b""
    raise AssertionError(f"a slow client was still connected after {LOOP_BOUND_S}s")


def slow_clients_meanwhile(shared_stack, first_bytes: bytes, trickle: bytes | None) -> list[bytes]:
    """What each slow client got when it was cut off; other visitors are served meanwhile."""
    started = time.monotonic()
    clients = [open_slow_client(shared_stack.port, first_bytes) for _ in range(SLOW_CLIENTS)]
    answers: list[bytes] = []

    def watch(client: socket.socket) -> None:
        try:
            answers.append(cut_off(client, started, trickle))
        finally:
            client.close()

    watchers = [threading.Thread(target=watch, args=(c,)) for c in clients]
    for watcher in watchers:
        watcher.start()
    while any(w.is_alive() for w in watchers):
        assert shared_stack.get("/api/cats/").status_code == 200
        time.sleep(0.5)
    for watcher in watchers:
        watcher.join()
    return answers


def test_slow_headers_are_cut_off(shared_stack):
    path = f"/api/cats/slow-header-{uuid.uuid4().hex}/"
    answers = slow_clients_meanwhile(
        shared_stack,
        f"GET {path} HTTP/1.1\r\nHost: {SITE_HOST}\r\n".encode(),
        trickle=b"X-Slow: still-typing\r\n",
    )
    # Trickling does not help: the whole header must arrive within the timeout.
    assert len(answers) == SLOW_CLIENTS
    assert all(a == b"" or a.startswith(b"HTTP/1.1 408") for a in answers), answers
    lines = shared_stack.nginx_lines(lambda r: r["path"] == path, count=SLOW_CLIENTS)
    assert [r["status"] for r in lines] == [408] * SLOW_CLIENTS
    assert all(never_reached_web(r) for r in lines)


def test_slow_bodies_are_cut_off_before_gunicorn(shared_stack):
    path = f"/cats/new/slow-body-{uuid.uuid4().hex}/"
    answers = slow_clients_meanwhile(
        shared_stack,
        (
            f"POST {path} HTTP/1.1\r\nHost: {SITE_HOST}\r\nX-Forwarded-Proto: https\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
            "name=slow"
        ).encode(),
        trickle=None,
    )
    assert len(answers) == SLOW_CLIENTS
    # nginx buffers whole bodies: gunicorn never saw these requests, so no thread waited.
    lines = shared_stack.nginx_lines(lambda r: r["path"] == path, count=SLOW_CLIENTS)
    assert [r["status"] for r in lines] == [408] * SLOW_CLIENTS
    assert all(never_reached_web(r) for r in lines)


# A visitor on the private network (a container beside nginx, so no proxy buffers in between)
# asks for a large file and reads nothing, then, once the test is done, reads what it can.
SLOW_READER = """
import socket, sys, time
client = socket.socket()
client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
client.connect(("nginx", 8080))
client.sendall(f"GET {sys.argv[1]} HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n".encode())
time.sleep(float(sys.argv[2]))
received = 0
try:
    while chunk := client.recv(65536):
        received += len(chunk)
except ConnectionResetError:
    print("reset")
print(received)
"""


def test_a_client_that_stops_reading_is_cut_off(shared_stack, containers):
    size = 64 * 1024 * 1024
    name = f"large-{uuid.uuid4().hex}.bin"
    shared_stack.exec(
        "web", "sh", "-c", f"head -c {size} /dev/zero > /srv/media/{name}"
    )  # fmt: skip
    reader = containers.run(
        PYTHON_IMAGE, "python", "-c", SLOW_READER, f"/media/{name}", str(LOOP_BOUND_S),
        options=["--network", f"{shared_stack.project.name}_frontend"],
    )  # fmt: skip
    # nginx logs the request once it gives up on the reader, while the reader still waits.
    [line] = wait_until(
        lambda: [r for r in shared_stack.json_logs("nginx") if r["path"] == f"/media/{name}"],
        LOOP_BOUND_S - 2,
        what="nginx giving up on a client that reads nothing",
    )
    assert reader.status() == "running"
    assert line["status"] == 200
    assert 0 < line["bytes"] < size
    assert line["duration_ms"] >= NGINX_TIMEOUT_S * 1000
    assert never_reached_web(line)
    assert reader.wait_exit(timeout=LOOP_BOUND_S + 30) == 0
    received = int(reader.logs().split()[-1])
    assert received < size
