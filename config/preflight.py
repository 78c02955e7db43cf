"""Load the settings once before a server starts, and refuse what cannot be served.

`python -m config.preflight [wsgi|asgi]`, or exit_if_misconfigured() at the top of gunicorn's
config module, exits 3 with one `error: ...` line when the configuration is unusable, so a
server never forks workers that would each fail the same way.
"""

import os
import sys

from django.conf import settings

from config.errors import ConfigurationError, exit_on_configuration_error

INTERFACES = ("wsgi", "asgi")


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


def main(argv: list[str]) -> None:
    if len(argv) > 1 or (argv and argv[0] not in INTERFACES):
        raise SystemExit(f"usage: python -m config.preflight [{'|'.join(INTERFACES)}]")
    exit_if_misconfigured(*argv)


if __name__ == "__main__":
    main(sys.argv[1:])
