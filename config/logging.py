"""JSON-lines logging shared by Django and gunicorn, carrying the request id nginx assigns.

One object per line on stdout with the keys `time`, `level`, `logger`, `message`, `request_id`,
plus any JSON-safe `extra` fields (access logs add method, path, status, duration_ms, ...).
Unhandled errors are also mailed to ADMINS, when there are any (config/settings.py).
"""

import json
import logging
import re
import time
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID_HEADER = "X-Request-ID"
# nginx's $request_id is 32 hex characters; UUIDs and most tracing ids also fit. Anything else
# (too long, spaces, quotes, control characters) is replaced rather than copied into every log.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; whatever else a record carries came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(
    set(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {"message", "asctime"}
)
_JSON_SCALARS = (str, int, float, bool, type(None))
# The same unhandled error is mailed at most once in this long, per process.
MAIL_INTERVAL_S = 600


def clean_request_id(value: str | None) -> str | None:
    """The header value if it is a safe id, else None (the caller then makes a fresh one)."""
    if value and REQUEST_ID_PATTERN.fullmatch(value):
        return value
    return None


def _request_id(record: logging.LogRecord) -> str | None:
    # Django logs 4xx responses after the middleware chain has returned (outside the context
    # the middleware set), but it passes the request along, which carries the id.
    return (
        getattr(record, "request_id", None)
        or request_id.get()
        or getattr(getattr(record, "request", None), "request_id", None)
    )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id(record),
        }
        for key, value in vars(record).items():
            # Django attaches the request object itself; only plain values belong in a log line.
            if (
                key not in _RECORD_ATTRIBUTES
                and key not in entry
                and isinstance(value, _JSON_SCALARS)
            ):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class ClientErrorsAreWarnings(logging.Filter):
    """A bad request is the client's fault, not the server's: one WARNING line, no traceback.

    Django logs a SuspiciousOperation (TooManyFieldsSent, RequestDataTooBig, DisallowedHost...)
    on `django.security.<name>` at ERROR with its traceback, and BadRequest, PermissionDenied
    or an unparsable upload on `django.request` at WARNING with one. Any client can send those
    requests, so as they are they would set off error-rate alerts and fill the log. Records of
    a 4xx response (`status_code`, which Django adds) and every `django.security.*` record keep
    their logger, message, status and request id; a 5xx keeps its ERROR and traceback.

    A filter on the handler, not on a logger: a logger's filters do not see the records of its
    children (`django.security.TooManyFieldsSent`, say), only the records it logs itself.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        client_error = isinstance(status, int) and 400 <= status < 500
        if client_error or record.name.startswith("django.security."):
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


class UnhandledErrorsOnce(logging.Filter):
    """Which records are mailed to ADMINS: unhandled exceptions (Django's 500s), each kind
    (exception type and the line that raised it) once per MAIL_INTERVAL_S in each process.

    A 503 Django answers on purpose (readiness during an outage, no free photo-check slot) is
    no error to mail. And the mail is sent inside the failing request: a burst of one failure
    (the database gone) is one mail per worker, not one per request, each held up by it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[tuple, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[0] is None:
            return False
        kind, _, traceback = record.exc_info
        while traceback is not None and traceback.tb_next is not None:
            traceback = traceback.tb_next
        where = (traceback.tb_frame.f_code.co_filename, traceback.tb_lineno) if traceback else ()
        key, now = (kind, *where), time.monotonic()
        if now - self.sent.get(key, -MAIL_INTERVAL_S) < MAIL_INTERVAL_S:
            return False
        self.sent[key] = now
        return True


def logging_config(level: str) -> dict:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {
            "client_errors": {"()": ClientErrorsAreWarnings},
            "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
            "unhandled_errors_once": {"()": UnhandledErrorsOnce},
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": ["client_errors"],
            },
            # Sends nothing while ADMINS is empty (the default; config/settings.py). Its mail
            # starts with the record as a JSON line, the request id in it.
            "mail_admins": {
                "class": "django.utils.log.AdminEmailHandler",
                "level": "ERROR",
                "formatter": "json",
                "filters": ["require_debug_false", "unhandled_errors_once"],
            },
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            # Django's defaults send these to stderr in plain text, and mail every ERROR of
            # `django` to ADMINS (a forged Host header included); route them through the root,
            # and mail only the requests that failed.
            "django": {"level": level, "handlers": [], "propagate": True},
            "django.request": {"handlers": ["mail_admins"], "propagate": True},
            "django.server": {"level": level, "handlers": [], "propagate": True},
        },
    }
