"""Logs are JSON lines carrying the request id nginx assigns (validated before it is used)."""

import io
import json
import logging
import re
import sys

import pytest
from django.test import Client

from config.logging import REQUEST_ID_PATTERN, JsonFormatter, clean_request_id
from tests.harness import REPO
from tests.unit.support import SITE_HOST, run_python

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


class JsonLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def log_lines():
    handler = JsonLines()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def test_a_record_is_one_json_line_with_the_common_keys():
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.LogRecord(
            "cats", logging.ERROR, __file__, 1, "a\nb %s", ("c",), sys.exc_info()
        )
    record.status = 500
    record.request = object()  # not JSON: left out
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry.pop("time"))
    assert "ValueError: bad\nthing" in entry.pop("exception")
    assert entry == {
        "level": "ERROR",
        "logger": "cats",
        "message": "a\nb c",
        "request_id": None,
        "status": 500,
    }


def test_an_explicit_request_id_on_the_record_wins():
    record = logging.LogRecord("gunicorn.access", logging.INFO, "", 0, "GET /", None, None)
    record.request_id = "from-gunicorn"
    assert json.loads(JsonFormatter().format(record))["request_id"] == "from-gunicorn"


def test_log_lines_during_a_request_carry_its_id(client, log_lines):
    client.get("/no-such-page/", headers={"x-request-id": "3f2a9c0d4e5b6a7f8091a2b3c4d5e6f7"})
    [entry] = [e for e in log_lines.entries() if e["logger"] == "django.request"]
    assert entry["request_id"] == "3f2a9c0d4e5b6a7f8091a2b3c4d5e6f7"
    assert entry["status_code"] == 404
    assert entry["level"] == "WARNING"


@pytest.mark.parametrize(
    "header",
    [None, "", "has space", "a" * 129, 'quote"', "line\\nbreak", "-leading-dash", "ünïcode"],
)
def test_a_missing_or_unsafe_request_id_is_replaced(client, log_lines, header):
    headers = {} if header is None else {"x-request-id": header}
    client.get("/no-such-page/", headers=headers)
    [entry] = [e for e in log_lines.entries() if e["logger"] == "django.request"]
    assert GENERATED_ID.fullmatch(entry["request_id"])


def test_the_request_id_does_not_leak_into_later_log_lines(client, log_lines):
    client.get("/no-such-page/", headers={"x-request-id": "req-1"})
    logging.getLogger("cats.after").warning("outside any request")
    assert log_lines.entries()[-1]["request_id"] is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3f2a9c0d4e5b6a7f8091a2b3c4d5e6f7", "3f2a9c0d4e5b6a7f8091a2b3c4d5e6f7"),
        ("5f1b2c3d-aaaa-4bbb-8ccc-123456789abc", "5f1b2c3d-aaaa-4bbb-8ccc-123456789abc"),
        ("trace.id:42_x", "trace.id:42_x"),
        ("a" * 128, "a" * 128),
        ("a" * 129, None),
        ("x\ny", None),
        ("", None),
        (None, None),
    ],
)
def test_request_id_validation(value, expected):
    assert clean_request_id(value) == expected


def test_nginx_keeps_exactly_the_request_ids_django_accepts():
    """Written twice (nginx cannot import Python): an id nginx passes on but Django replaced
    would split one request's lines across two ids."""
    template = REPO / "nginx/templates/site.conf.template"
    nginx_patterns = re.findall(r'"~\^1\(\?<trusted_request_id>(.+?)\)\$"', template.read_text())
    assert nginx_patterns == [REQUEST_ID_PATTERN.pattern]


def test_django_logs_json_lines_on_stdout():
    result = run_python(
        "manage.py",
        "shell",
        "--no-imports",
        "-c",
        "import logging; logging.getLogger('cats.check').warning('hello\\nworld')",
    )
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    entry = json.loads(line)
    assert entry["logger"] == "cats.check"
    assert entry["message"] == "hello\nworld"
    assert entry["level"] == "WARNING"
    assert entry["request_id"] is None


@pytest.fixture
def stdout_entries():
    """What the handler settings.LOGGING configured (its formatter and filters) writes during
    the test, as parsed JSON objects: the real path of a log line, not a stand-in handler."""
    [handler] = [h for h in logging.getLogger().handlers if h.get_name() == "stdout"]
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    handler.setStream(previous)


# DATA_UPLOAD_MAX_NUMBER_FIELDS and DATA_UPLOAD_MAX_MEMORY_SIZE (Django's defaults) exceeded.
OVER_FIELD_LIMIT = "&".join(f"f{i}=1" for i in range(1020))
OVER_MEMORY_LIMIT = "a=" + "x" * (2_621_440 + 1)
# CsrfViewMiddleware reads a POST for its token: a client that sends a cookie of its own (and
# an Origin) gets that far without having loaded any page.
OWN_CSRF_COOKIE = {"cookie": "csrftoken=" + "a" * 32, "origin": f"https://{SITE_HOST}"}
URLENCODED = "application/x-www-form-urlencoded"
# Requests any client can send that make Django log with a traceback, at ERROR for a
# SuspiciousOperation: id -> (method, path, headers, body and its type, the logger).
BAD_REQUESTS = {
    "TooManyFieldsSent in the query": (
        "get", f"/api/cats/?{OVER_FIELD_LIMIT}", {}, {}, "django.security.TooManyFieldsSent"
    ),
    "TooManyFieldsSent in a form": (
        "post", "/cats/new/", OWN_CSRF_COOKIE,
        {"data": OVER_FIELD_LIMIT, "content_type": URLENCODED},
        "django.security.TooManyFieldsSent",
    ),
    "RequestDataTooBig": (
        "post", "/cats/new/", OWN_CSRF_COOKIE,
        {"data": OVER_MEMORY_LIMIT, "content_type": URLENCODED},
        "django.security.RequestDataTooBig",
    ),
    "DisallowedHost": ("get", "/", {"host": "evil.example"}, {}, "django.security.DisallowedHost"),
    "a multipart body that does not parse": (
        "post", "/cats/new/", OWN_CSRF_COOKIE,
        {"data": "x", "content_type": "multipart/form-data; boundary="},
        "django.request",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_REQUESTS.values(), ids=list(BAD_REQUESTS))
def test_a_bad_request_is_one_warning_line_without_a_traceback(stdout_entries, case):
    """Any client can send these: an ERROR or a traceback would set off error alerts and fill
    the log for nothing the server did wrong."""
    method, path, headers, body, logger = case
    client = Client(enforce_csrf_checks=True)
    headers = {"host": SITE_HOST, "x-forwarded-proto": "https", **headers}
    response = getattr(client, method)(path, headers=headers, **body)
    assert response.status_code == 400
    entries = stdout_entries()
    [entry] = [e for e in entries if e["logger"] == logger]
    assert (entry["level"], entry["status_code"]) == ("WARNING", 400)
    assert GENERATED_ID.fullmatch(entry["request_id"])
    assert [e for e in entries if e["level"] in ("ERROR", "CRITICAL") or "exception" in e] == []


def test_a_server_error_keeps_its_level_and_traceback(stdout_entries):
    try:
        raise RuntimeError("the server's own fault")
    except RuntimeError:
        logging.getLogger("django.request").error(
            "Internal Server Error: /", exc_info=True, extra={"status_code": 500}
        )
    [entry] = stdout_entries()
    assert entry["level"] == "ERROR"
    assert "RuntimeError: the server's own fault" in entry["exception"]
