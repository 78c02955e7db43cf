"""Unhandled errors reach someone: mailed to ADMINS with the request id (config/logging.py),
sent to Sentry with the request id as a tag when a DSN is set (config/sentry.py), and their
settings each refused with one line when bad (config/settings.py)."""

import json
import logging

import pytest
from django.test import Client
from django.utils.log import AdminEmailHandler

from config.logging import UnhandledErrorsOnce
from tests.unit.support import SITE_HOST, run_python
from tests.unit.test_settings import PREFLIGHT, assert_refused

PROXIED = {"host": SITE_HOST, "x-forwarded-proto": "https"}
REQUEST_ID = "5c1d0a9e8b7f4e3d2c1b0a9f8e7d6c5b"
MAIL = {
    "DJANGO_ADMINS": "Ops Team <ops@example.org>, jane@example.org",
    "DJANGO_SERVER_EMAIL": "cats@example.org",
    "DJANGO_EMAIL_HOST": "smtp.example.org",
}


@pytest.fixture
def admins(settings):
    """Admins to mail, and a fresh memory of what was mailed."""
    settings.ADMINS = [("Ops Team", "ops@example.org")]
    settings.SERVER_EMAIL = "cats@example.org"
    [handler] = logging.getLogger("django.request").handlers
    assert isinstance(handler, AdminEmailHandler)
    [once] = [f for f in handler.filters if isinstance(f, UnhandledErrorsOnce)]
    once.sent.clear()
    return settings.ADMINS


@pytest.mark.urls("tests.unit.failing_urls")
def test_an_unhandled_error_is_mailed_to_the_admins_once_with_its_request_id(admins, mailoutbox):
    client = Client(raise_request_exception=False, headers=PROXIED)
    first = client.get("/fails/", headers={"x-request-id": REQUEST_ID})
    again = client.get("/fails/", headers={"x-request-id": "another-request"})
    assert (first.status_code, again.status_code) == (500, 500)

    [mail] = mailoutbox
    assert mail.to == ["ops@example.org"]
    assert mail.from_email == "cats@example.org"
    assert mail.subject.startswith("[catcollector] ERROR")
    assert "Internal Server Error: /fails/" in mail.subject
    first_line = json.loads(mail.body.splitlines()[0])
    assert first_line["request_id"] == REQUEST_ID
    assert first_line["status_code"] == 500
    assert "Exception Type: RuntimeError at /fails/" in mail.body


@pytest.mark.urls("tests.unit.failing_urls")
def test_answers_that_are_no_unhandled_error_are_not_mailed(admins, mailoutbox):
    client = Client(headers=PROXIED)
    assert client.get("/unavailable/").status_code == 503
    assert client.get("/no-such-page/").status_code == 404
    assert client.get("/fails/", headers={"host": "forged.example"}).status_code == 400
    assert mailoutbox == []


def test_mail_settings_follow_the_environment():
    script = (
        "import json; from django.conf import settings as s; print(json.dumps([s.ADMINS, "
        "s.SERVER_EMAIL, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_USE_TLS, s.EMAIL_USE_SSL]))"
    )
    result = run_python("-c", script, env=MAIL | {"DJANGO_EMAIL_SECURITY": "ssl"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        [["Ops Team", "ops@example.org"], ["", "jane@example.org"]],
        "cats@example.org",
        "smtp.example.org",
        587,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        (
            {"DJANGO_ADMINS": "Ops <ops at example.org>"},
            ["DJANGO_ADMINS entry 'Ops <ops at example.org>' is not a mail address"],
        ),
        (
            {"DJANGO_ADMINS": "ops@example.org"},
            ["DJANGO_ADMINS is set but DJANGO_EMAIL_HOST is not"],
        ),
        (
            {"DJANGO_ADMINS": "ops@example.org", "DJANGO_EMAIL_HOST": "smtp.example.org"},
            ["DJANGO_ADMINS is set but DJANGO_SERVER_EMAIL is not"],
        ),
        (MAIL | {"DJANGO_SERVER_EMAIL": "cats"}, ["DJANGO_SERVER_EMAIL='cats' is not a mail"]),
        (
            MAIL | {"DJANGO_EMAIL_HOST": "smtp://smtp.example.org:587"},
            ["DJANGO_EMAIL_HOST='smtp://smtp.example.org:587' is not a host name"],
        ),
        (MAIL | {"DJANGO_EMAIL_PORT": "smtp"}, ["DJANGO_EMAIL_PORT='smtp' is not a whole"]),
        (MAIL | {"DJANGO_EMAIL_SECURITY": "tls"}, ["DJANGO_EMAIL_SECURITY='tls' is not one of"]),
        (
            MAIL | {"DJANGO_EMAIL_HOST_USER": "cats"},
            ["DJANGO_EMAIL_HOST_USER and DJANGO_EMAIL_HOST_PASSWORD (or _FILE) go together"],
        ),
        (
            {"DJANGO_EMAIL_HOST_PASSWORD_FILE": "/no/such/file"},
            ["DJANGO_EMAIL_HOST_PASSWORD_FILE points at /no/such/file"],
        ),
        (
            {"DJANGO_SENTRY_DSN": "https://o0.ingest.sentry.io/hunter2"},
            ["DJANGO_SENTRY_DSN is not a Sentry DSN"],
        ),
    ],
    ids=lambda value: "+".join(value) if isinstance(value, dict) else None,
)
def test_bad_error_report_settings_are_one_line_each(env, fragments):
    line = assert_refused(run_python(*PREFLIGHT, env=env), *fragments)
    assert "hunter2" not in line


SENTRY = f"""
import json
import django
django.setup()
import sentry_sdk
from django.conf import settings
from django.test import Client
from django.utils.log import AdminEmailHandler
from sentry_sdk.transport import Transport

class Captured(Transport):
    \"\"\"sentry-sdk's transport interface: every envelope the client would send.\"\"\"
    def __init__(self):
        super().__init__()
        self.events = []
    def capture_envelope(self, envelope):
        if envelope.get_event() is not None:
            self.events.append(envelope.get_event())

transport = Captured()
sentry_sdk.get_client().transport = transport
settings.ROOT_URLCONF = "tests.unit.failing_urls"
client = Client(raise_request_exception=False, headers={PROXIED!r})
status = client.get("/fails/", headers={{"x-request-id": "{REQUEST_ID}"}}).status_code
print(json.dumps({{
    "status": status,
    "events": [
        {{"tags": event.get("tags"), "release": event.get("release"),
          "type": event["exception"]["values"][-1]["type"]}}
        for event in transport.events
    ],
}}))
"""


def test_with_a_dsn_an_unhandled_error_reaches_sentry_tagged_with_its_request_id():
    """In a process of its own: Sentry's SDK, once started, patches Django for good."""
    result = run_python(
        "-c",
        SENTRY,
        env={"DJANGO_SENTRY_DSN": "https://public@sentry.example.org/1", "APP_VERSION": "1.4.2"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["status"] == 500
    assert report["events"], "no event reached the transport"
    for event in report["events"]:
        assert event["tags"]["request_id"] == REQUEST_ID
        assert (event["release"], event["type"]) == ("1.4.2", "RuntimeError")
