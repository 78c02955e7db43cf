"""A bounded, mixed load on the stack while an ops verb runs, counting every failure.

Visitors load the home page and every static file it references (so a page rendered by one
release must still find its CSS during and after the switch); a signed-in writer adds cats
through the form, and each cat whose POST was acknowledged (302) is remembered for checking
afterwards; one slow upload can be sent across the switch. A request fails on any answer other
than the expected one, on a connection error and on a timeout.

One case is resent, once, as browsers resend it: a kept-alive connection the server closed
before answering (nginx closes its idle connections when a reload retires its workers, and a
request sent at that instant meets the close; RFC 9112, 9.3.1). nginx never read it, so the
resend cannot double a write. Each resend is counted in `resent`; a refused connection, a
reset after an answer began and a timeout are failures as before.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from tests.harness.load import Threads
from tests.stack.support import SITE_HOST, Client, png_bytes

VISITORS = 3
PAUSE_S = 0.05
LOOP_BOUND_S = 240
REQUEST_TIMEOUT_S = 15
STATIC_LINK = re.compile(r'(?:href|src)="(/static/[^"]+)"')


def closed_unanswered(error: BaseException) -> bool:
    """Whether a request failed because its kept-alive connection was closed before any answer
    (requests wraps urllib3's ProtocolError, which holds http.client's error)."""
    seen: list[BaseException] = [error]
    while seen:
        current = seen.pop()
        if isinstance(current, (http.client.RemoteDisconnected, ConnectionResetError)):
            return True
        seen += [arg for arg in current.args if isinstance(arg, BaseException)]
        seen += [e for e in (current.__cause__, current.__context__) if e is not None]
    return False


@dataclass
class Site:
    """Where the traffic goes: nginx's published port on loopback."""

    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@dataclass
class Traffic:
    site: Site
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    static_seen: set[str] = field(default_factory=set)
    resent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.writer = Client(self.site)
        self.writer.log_in()
        self.threads = Threads(*[self.visit] * VISITORS, self.write)
        self.started = time.monotonic()

    def count(self, ok: bool, what: str) -> None:
        with self.lock:
            self.requests += 1
            if not ok:
                self.failures.append(f"{time.monotonic() - self.started:.2f}s {what}")

    def running(self, stop: threading.Event) -> bool:
        return not stop.is_set() and time.monotonic() - self.started < LOOP_BOUND_S

    def send(self, what: str, request) -> requests.Response | None:
        """`request()`'s answer, resent once over a closed kept-alive connection; None (a
        failure counted) on any other connection error or timeout."""
        try:
            try:
                return request()
            except requests.ConnectionError as error:
                if not closed_unanswered(error):
                    raise
            with self.lock:
                self.resent += 1
            return request()
        except requests.RequestException as error:
            self.count(False, f"{what}: {type(error).__name__} {error}")
            return None

    def get(self, session: requests.Session, path: str) -> requests.Response | None:
        response = self.send(
            f"GET {path}",
            lambda: session.get(
                self.site.url(path),
                headers={"Host": SITE_HOST, "X-Forwarded-Proto": "https"},
                timeout=REQUEST_TIMEOUT_S,
            ),
        )
        if response is not None:
            self.count(response.status_code == 200, f"GET {path}: {response.status_code}")
        return response

    def visit(self, stop: threading.Event) -> None:
        session = requests.Session()
        while self.running(stop):
            page = self.get(session, "/")
            if page is not None and page.status_code == 200:
                for path in STATIC_LINK.findall(page.text):
                    with self.lock:
                        self.static_seen.add(path)
                    self.get(session, path)
            time.sleep(PAUSE_S)

    def write(self, stop: threading.Event) -> None:
        while self.running(stop):
            name = f"load-{uuid.uuid4().hex[:10]}"
            response = self.send(
                "POST /cats/new/",
                lambda name=name: self.writer.post_form(
                    "/cats/new/", {"name": name, "breed": "Tabby", "age": "2"}
                ),
            )
            if response is None:
                continue
            ok = response.status_code == 302
            self.count(ok, f"POST /cats/new/: {response.status_code}")
            if ok:
                with self.lock:
                    self.acknowledged.append(name)
            time.sleep(PAUSE_S * 4)

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


def cat_names(site: Site) -> set[str]:
    """Every cat's name, through the JSON API."""
    names, path = set(), "/api/cats/?page_size=100"
    while True:
        response = requests.get(
            site.url(path),
            headers={"Host": SITE_HOST, "X-Forwarded-Proto": "https"},
            timeout=REQUEST_TIMEOUT_S,
        )
        response.raise_for_status()
        data = response.json()
        names |= {cat["name"] for cat in data["results"]}
        if not data["next"]:
            return names
        path = urlsplit(data["next"])._replace(scheme="", netloc="").geturl()
