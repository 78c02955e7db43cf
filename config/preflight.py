"""Load the settings once before a server starts, and refuse what cannot be served.

config.gunicorn runs load_for_serving() in gunicorn's master (and the entrypoint runs that
module on its own first: `python -m config.gunicorn` is the one way to check a configuration);
the entrypoint's helper scripts call exit_if_misconfigured(). Either way an unusable
configuration is one `error: ...` line and exit status 3, so a server never forks workers that
would each fail the same way.
"""

import os

from django.conf import settings

from config.errors import ConfigurationError, exit_on_configuration_error


def load_for_serving(interface: str = "wsgi") -> None:
    """Raise ConfigurationError unless the settings load and describe a servable site."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if settings.BUILD_STATIC_ONLY:
        raise ConfigurationError(
            "DJANGO_BUILD_STATIC is set; it is only for collectstatic during the image build, "
            "unset it to serve"
        )
    if interface == "asgi" and settings.DB_CONNECTIONS == "persistent":
        # Under ASGI every request runs in a fresh thread, so a persistent connection is never
        # reused: each request leaves one open until the server hits max_connections.
        raise ConfigurationError(
            "DJANGO_DB_CONNECTIONS=persistent leaks a database connection per request under "
            "ASGI; use pool (the default)"
        )


def exit_if_misconfigured(interface: str = "wsgi") -> None:
    with exit_on_configuration_error():
        load_for_serving(interface)
