"""GUNICORN_MODE=asgi: uvicorn under gunicorn, writing gunicorn's JSON access line.

uvicorn's own access log has no duration, size or request headers, so a small ASGI wrapper
measures each request and hands it to config.gunicorn_logging.JsonAccessLogger, the logger
the wsgi workers use: both modes write the same keys.
"""

import datetime
import time
from typing import ClassVar

from uvicorn_worker import UvicornWorker

from config.gunicorn_logging import JsonAccessLogger


class _Response:
    status = 500  # what uvicorn answers when the application fails before responding
    sent = 0


class AccessLogMiddleware:
    """Measures each HTTP request for JsonAccessLogger."""

    def __init__(self, app, log: JsonAccessLogger) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        response = _Response()

        async def measured_send(message) -> None:
            if message["type"] == "http.response.start":
                response.status = message["status"]
            elif message["type"] == "http.response.body":
                response.sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, measured_send)
        finally:
            elapsed = datetime.timedelta(seconds=time.monotonic() - started)
            self.log.access(response, None, self.environ(scope), elapsed)

    @staticmethod
    def environ(scope) -> dict:
        environ = {
            "REQUEST_METHOD": scope["method"],
            "PATH_INFO": scope["path"],
            "REMOTE_ADDR": scope["client"][0] if scope.get("client") else "-",
        }
        for name, value in scope["headers"]:
            # As gunicorn does: X_Request_ID must not pass for X-Request-ID.
            if b"_" not in name:
                key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
                environ[key] = value.decode("latin-1")
        return environ


class JsonUvicornWorker(UvicornWorker):
    # Django has no lifespan handlers; our wrapper writes the access log instead of uvicorn.
    # No proxy headers: uvicorn would rewrite the scheme and client address Django sees, which
    # the wsgi workers do not; Django alone decides the scheme (DJANGO_TRUST_X_FORWARDED_PROTO).
    CONFIG_KWARGS: ClassVar[dict] = {
        **UvicornWorker.CONFIG_KWARGS,
        "access_log": False,
        "lifespan": "off",
        "proxy_headers": False,
    }

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = AccessLogMiddleware(self.wsgi, self.log)
