"""config.gunicorn as it served before issue 13 (commit 33a170e), for comparisons in one run:
gthread with GUNICORN_THREADS=4, no frozen objects, no warm-up in the master. Use it as

    --variant before "GUNICORN_THREADS=4 --config python:tests.benchmarks.gunicorn_before"

with tests/benchmarks/profile_web.py.
"""

from config.gunicorn import *  # noqa: F403 (the image's configuration, hooks overridden below)


def when_ready(server) -> None:
    """gunicorn's default: nothing."""


def pre_fork(server, worker) -> None:
    """gunicorn's default: nothing."""
