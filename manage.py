#!/usr/bin/env python
"""Django's command-line utility; bad configuration ends it with one `error: ...` line."""

import os
import sys

from django.conf import settings
from django.core.management import execute_from_command_line

from config.errors import ConfigurationError, exit_on_configuration_error


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    with exit_on_configuration_error():
        if settings.BUILD_STATIC_ONLY and sys.argv[1:2] != ["collectstatic"]:
            raise ConfigurationError(
                "DJANGO_BUILD_STATIC is set; it only allows `manage.py collectstatic`"
            )
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
