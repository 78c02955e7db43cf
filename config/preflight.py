"""Load the settings once before a server starts, and refuse to serve in build mode.

`python -m config.preflight`, or exit_if_misconfigured() at the top of gunicorn's config
module, exits 78 with one `error: ...` line when the configuration is unusable, so a server
never forks workers that would each fail the same way.
"""

import os

from django.conf import settings

from config.errors import ConfigurationError, exit_on_configuration_error


def load_for_serving() -> None:
    """Raise ConfigurationError unless the settings load and describe a servable site."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if settings.BUILD_STATIC_ONLY:
        raise ConfigurationError(
            "DJANGO_BUILD_STATIC is set; it is only for collectstatic during the image build, "
            "unset it to serve"
        )


def exit_if_misconfigured() -> None:
    with exit_on_configuration_error():
        load_for_serving()


if __name__ == "__main__":
    exit_if_misconfigured()
