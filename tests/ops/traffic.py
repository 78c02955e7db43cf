"""A bounded, mixed load on the stack while an ops verb runs, counting every failure.

Visitors load the home page and every static file it references (so a page rendered by one
release must still find its CSS during and after the switch), each over its own kept-alive
connection, as a browser tab does, spread over the sites given (a balancer in front of the VM,
and nginx's port itself: both ways a visitor can come); a signed-in writer, through the first,
adds cats through the form, each on a new connection, and each cat whose POST was acknowledged
(302) is remembered, in order, for checking afterwards: every one there, and exactly once. One
slow upload can be sent across the switch. A request fails on any answer other than the
expected one, on a connection error and on a timeout.

The visitors' connections resend what a browser resends and nothing more
(tests/harness/browser_connection.py): a GET on a reused connection that was closed before any
byte of an answer, once. Each resend is counted in `resent`, which the tests bound and record
beside `failures`. A write is never resent.

Each failure names the answer's request id (nginx sets X-Request-ID on everything it answers;
a balancer's own answer has none), so `explain` can show what nginx and the balancer logged for
exactly those requests.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from tests.harness.browser_connection import BrowserConnection
from tests.harness.load import Threads
from tests.stack.support import SITE_HOST, Client, png_bytes

VISITORS = 3
PAUSE_S = 0.05
LOOP_BOUND_S = 240
REQUEST_TIMEOUT_S = 15
STATIC_LINK = re.compile(r'(?:href|src)="(/static/[^"]+)"')
HEADERS = {"Host": SITE_HOST, "X-Forwarded-Proto": "https"}
# nginx's error log format ("2026/12/06 05:00:00 [error] 29#29: *1 upstream prematurely...").
NGINX_ERROR = re.compile(r"\[(?:warn|error|crit|alert|emerg)\] ")
# A 5xx in nginx's JSON access line, or in HAProxy's httplog line (nginx never logged a 5xx
# the balancer made itself).
ANSWERED_5XX = re.compile(r'"status":5\d\d|\s5\d\d\s')
EXPLAINED_LINES_BOUND = 40


def answered_by(headers) -> str:
    """Which request an answer was: nginx's request id, or the note that nginx gave none."""
    request_id = headers.get("X-Request-ID") if headers is not None else None
    return f" (request {request_id})" if request_id else " (no X-Request-ID)"


@dataclass
class Site:
    """Where the traffic goes: nginx's published port on loopback, or a balancer's."""

    port: int
    name: str = "nginx"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class Traffic:
    def __init__(self, *sites: Site) -> None:
        self.sites = sites
        self.requests = 0
        self.failures: list[str] = []
        self.acknowledged: list[str] = []
        self.static_seen: set[str] = set()
        self.connections: list[tuple[Site, BrowserConnection]] = []
        self.lock = threading.Lock()
        self.writer = Client(sites[0])
        self.writer.log_in()
        self.threads = Threads(*[self.visit] * VISITORS, self.write)
        self.started = time.monotonic()

    def failed_through(self, site: Site) -> list[str]:
        return [failure for failure in self.failures if f" {site.name}: " in failure]

    @property
    def resent(self) -> int:
        return sum(connection.resent for _, connection in self.connections)

    def resent_through(self, site: Site) -> int:
        return sum(connection.resent for by, connection in self.connections if by == site)

    def count(self, ok: bool, what: str) -> None:
        with self.lock:
            self.requests += 1
            if not ok:
                self.failures.append(f"{time.monotonic() - self.started:.2f}s {what}")

    def running(self, stop: threading.Event) -> bool:
        return not stop.is_set() and time.monotonic() - self.started < LOOP_BOUND_S

    def get(self, site: Site, connection: BrowserConnection, path: str) -> str | None:
        """The page's text when it answered 200; None (a failure counted) otherwise."""
        try:
            answer = connection.request("GET", path, HEADERS)
        except (OSError, http.client.HTTPException) as error:  # resets, timeouts included
            self.count(False, f"{site.name}: GET {path}: {type(error).__name__} {error}")
            return None
        self.count(
            answer.status == 200,
            f"{site.name}: GET {path}: {answer.status}{answered_by(answer.headers)}",
        )
        return answer.text if answer.status == 200 else None

    def visit(self, stop: threading.Event) -> None:
        with self.lock:
            site = self.sites[len(self.connections) % len(self.sites)]
            connection = BrowserConnection("127.0.0.1", site.port, REQUEST_TIMEOUT_S)
            self.connections.append((site, connection))
        try:
            while self.running(stop):
                page = self.get(site, connection, "/")
                for path in STATIC_LINK.findall(page or ""):
                    with self.lock:
                        self.static_seen.add(path)
                    self.get(site, connection, path)
                time.sleep(PAUSE_S)
        finally:
            connection.close()

    def write(self, stop: threading.Event) -> None:
        while self.running(stop):
            name = f"load-{uuid.uuid4().hex[:10]}"
            try:
                response = self.writer.post_form(
                    "/cats/new/", {"name": name, "breed": "Tabby", "age": "2"}
                )
            except requests.RequestException as error:
                self.count(False, f"{self.sites[0].name}: POST /cats/new/: "
                                  f"{type(error).__name__} {error}")  # fmt: skip
                continue
            ok = response.status_code == 302
            self.count(ok, f"{self.sites[0].name}: POST /cats/new/: {response.status_code}"
                           f"{answered_by(response.headers)}")  # fmt: skip
            if ok:
                with self.lock:
                    self.acknowledged.append(name)
            time.sleep(PAUSE_S * 4)

    def explain(self, *logs: str) -> list[str]:
        """The failures, then what the logs given (nginx's, the balancer's, web's) say of them:
        the lines naming a failed request's id, then nginx's error lines and every 5xx logged."""
        ids = set(re.findall(r"\(request ([^)]+)\)", " ".join(self.failures)))
        lines = [line for text in logs for line in text.splitlines()]
        named = [line for line in lines if any(i in line for i in ids)]
        errors = [
            line
            for line in lines
            if line not in named and (NGINX_ERROR.search(line) or ANSWERED_5XX.search(line))
        ]
        return [
            *self.failures[:10],
            "--- the logs' lines naming them:",
            *named[:EXPLAINED_LINES_BOUND],
            "--- errors and 5xx answers logged:",
            *errors[-EXPLAINED_LINES_BOUND:],
        ]

    def summary(self) -> dict[str, int]:
        """What a test records beside its own numbers: requests, failed, and the resends
        through each site."""
        resent = {f"resent ({site.name})": self.resent_through(site) for site in self.sites}
        return {"requests": self.requests, "failed": len(self.failures), **resent}

    def __enter__(self) -> Traffic:
        self.threads.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.threads.__exit__(*exc)


class SlowUpload(threading.Thread):
    """A signed-in cat form with a photo, sent a little at a time over `duration_s` through a
    raw socket (as a phone on a poor connection does); `status` is nginx's answer."""

    def __init__(self, site: Site, duration_s: float, name: str) -> None:
        super().__init__()
        self.site = site
        self.duration_s = duration_s
        self.name = name
        self.client = Client(site)
        self.client.log_in()
        self.client.get("/cats/new/")
        self.status: int | str | None = None
        self.location = ""

    def body(self, boundary: str) -> bytes:
        fields = {
            "csrfmiddlewaretoken": self.client.cookies["csrftoken"],
            "name": self.name, "breed": "Slow", "age": "4",
        }  # fmt: skip
        disposition = '--{}\r\nContent-Disposition: form-data; name="{}"\r\n\r\n{}\r\n'
        parts = [disposition.format(boundary, key, value).encode() for key, value in fields.items()]
        photo = png_bytes((600, 400))
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; '
            f'filename="slow.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
            + photo + b"\r\n"
        )  # fmt: skip
        parts.append(f"--{boundary}--\r\n".encode())
        return b"".join(parts)

    def run(self) -> None:
        boundary = uuid.uuid4().hex
        body = self.body(boundary)
        cookies = "; ".join(f"{k}={v}" for k, v in self.client.cookies.items())
        head = (
            f"POST /cats/new/ HTTP/1.1\r\nHost: {SITE_HOST}\r\nX-Forwarded-Proto: https\r\n"
            f"Origin: https://{SITE_HOST}\r\nReferer: https://{SITE_HOST}/cats/new/\r\n"
            f"Cookie: {cookies}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        chunks = 40
        size = -(-len(body) // chunks)
        try:
            with socket.create_connection(("127.0.0.1", self.site.port), timeout=30) as sock:
                sock.sendall(head)
                for start in range(0, len(body), size):
                    sock.sendall(body[start : start + size])
                    time.sleep(self.duration_s / chunks)
                answer = sock.recv(4096).decode("latin-1")
            self.status = int(answer.split(" ", 2)[1])
            location = re.search(r"^Location: (\S+)", answer, re.MULTILINE | re.IGNORECASE)
            self.location = location.group(1) if location else ""
        except (OSError, ValueError, IndexError) as error:
            self.status = type(error).__name__


def cat_names(site: Site) -> list[str]:
    """Every cat's name, once per row, through the JSON API."""
    names, path = [], "/api/cats/?page_size=100"
    while True:
        response = requests.get(site.url(path), headers=HEADERS, timeout=REQUEST_TIMEOUT_S)
        response.raise_for_status()
        data = response.json()
        names += [cat["name"] for cat in data["results"]]
        if not data["next"]:
            return names
        path = urlsplit(data["next"])._replace(scheme="", netloc="").geturl()


def written_once(site: Site, acknowledged: list[str]) -> dict[str, int]:
    """Each acknowledged cat that is not in the database exactly once, with its row count
    (missing: 0; written twice: 2). Empty when every acknowledged write landed once."""
    rows = Counter(cat_names(site))
    wrong = {name: rows[name] for name in acknowledged if rows[name] != 1}
    repeated = [name for name, times in Counter(acknowledged).items() if times > 1]
    assert not repeated, f"names acknowledged twice (the load's own bug): {repeated}"
    return wrong
