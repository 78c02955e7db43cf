"""Unhandled errors to Sentry, only when DJANGO_SENTRY_DSN is set (config/settings.py starts it;
docs/operations.md, Monitoring).

Every event carries the request id as the tag `request_id`: the value of config.logging's
context variable, which every log line of that request (or of the Celery task it queued)
carries too, so an event leads to its log lines. No performance tracing, so no span is
recorded for any request, and no personal data (send_default_pii off: no cookies, no user).
"""

import sentry_sdk
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.utils import BadDsn, Dsn

from config.errors import ConfigurationError
from config.logging import request_id


def tag_request_id(event: dict, hint: dict) -> dict:
    """Sentry's before_send: runs in the failing request's own context."""
    value = request_id.get()
    if value is not None:
        event.setdefault("tags", {})["request_id"] = value
    return event


def start_sentry(dsn: str, release: str) -> None:
    try:
        Dsn(dsn)
    except BadDsn:
        # The DSN itself stays out of the message: it holds the project's key.
        raise ConfigurationError(
            "DJANGO_SENTRY_DSN is not a Sentry DSN; copy it from the Sentry project's "
            "settings (Client Keys), like https://KEY@o0.ingest.sentry.io/0"
        ) from None
    sentry_sdk.init(
        dsn=dsn,
        release=release,
        integrations=[DjangoIntegration()],
        before_send=tag_request_id,
        send_default_pii=False,
    )
