"""The one error type bad configuration raises, and how entry points report it.

Settings raise ConfigurationError with a message that names the variable to fix. Entry points
(manage.py, wsgi.py, asgi.py, config.gunicorn, the entrypoint's scripts) turn it into one
`error: ...` line on stderr and exit status 3, so ops read the cause instead of a traceback.
3 is also what gunicorn's master reads as "worker failed to boot": it stops instead of
respawning workers that would fail the same way forever.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

EXIT_CODE = 3


class ConfigurationError(Exception):
    """The environment does not describe a runnable configuration."""


def first_line(error: Exception) -> str:
    """An error's first line, whitespace collapsed: libpq's says what failed, later ones are
    generic advice."""
    lines = str(error).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(error).__name__


def report(exc: ConfigurationError) -> None:
    print(f"error: {exc}", file=sys.stderr, flush=True)


@contextmanager
def exit_on_configuration_error() -> Iterator[None]:
    try:
        yield
    except ConfigurationError as exc:
        report(exc)
        raise SystemExit(EXIT_CODE) from None


def install_excepthook() -> None:
    """Print an uncaught ConfigurationError as one line.

    Covers loads that do not go through our entry points, such as `django-admin` or
    `python -c "import django; django.setup()"`. Any other exception keeps its traceback.
    """
    previous = sys.excepthook
    if getattr(previous, "reports_configuration_errors", False):
        return

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if isinstance(exc, ConfigurationError):
            report(exc)
        else:
            previous(kind, exc, tb)

    hook.reports_configuration_errors = True  # type: ignore[attr-defined]
    sys.excepthook = hook
