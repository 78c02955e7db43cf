"""One browser tab's kept-alive HTTP/1.1 connection, with a browser's one resend and nothing more.

A server may close an idle kept-alive connection at any moment (nginx closes its idle ones when
a reload retires its workers), and a request already on its way over that connection meets the
close: no byte of an answer ever comes. Browsers send such a request again on a new connection
(RFC 9112, 9.3.1; Chromium's HttpNetworkTransaction::ShouldResendRequest: a reused connection,
closed or reset, no response headers yet). This client does the same and no more:

- only GET and HEAD (idempotent);
- only on a connection that had already carried an answer (reused): a new connection that is
  closed or refused is a failure, whatever proxy stands in between;
- only when no byte of the answer arrived (http.client's RemoteDisconnected is an empty status
  line; a reset or broken pipe while sending or before the status line);
- once, on a fresh connection; every resend is counted in `resent`.

Anything else (an error status, a timeout, a reset after the answer began, a second failure)
raises to the caller, who counts it as failed.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from dataclasses import dataclass

IDEMPOTENT = ("GET", "HEAD")
# What "closed before any byte of an answer" looks like from http.client.
CLOSED_UNANSWERED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class BrowserConnection:
    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None
        self.answered = 0  # answers carried by the current connection
        self.resent = 0

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = None
        self.answered = 0

    def request(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        reused = self.connection is not None and self.answered > 0
        try:
            return self._send(method, path, headers)
        except Unanswered as closed:
            if not (reused and method in IDEMPOTENT):
                raise closed.__cause__ from None
        self.resent += 1
        try:
            return self._send(method, path, headers)
        except Unanswered as closed:
            raise closed.__cause__ from None

    def _send(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            try:
                self.connection.request(method, path, headers=dict(headers))
                response = self.connection.getresponse()
            except CLOSED_UNANSWERED as error:
                raise Unanswered from error
            # From here a byte of the answer has come: nothing is resent.
            answer = Answer(response.status, response.headers, response.read())
        except BaseException:
            self.close()
            raise
        self.answered += 1
        if response.will_close:
            self.close()
        return answer


class Unanswered(Exception):
    """The connection closed before any byte of an answer (the cause says how)."""
