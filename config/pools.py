"""Closing the database pools while the process still runs their threads.

Left to interpreter shutdown, psycopg_pool waits 5 s for each of its (by then frozen) threads
and warns about each: a `manage.py` command or an entrypoint script took 20 s to exit, and a
gunicorn worker replaced after max_requests lingered as long. config.settings registers
close_pools to run at exit; gunicorn's worker_exit hook calls it too.
"""

from django.conf import settings
from django.db import connections


def close_pools() -> None:
    if settings.DB_CONNECTIONS == "pool":
        for connection in connections.all(initialized_only=True):
            connection.close_pool()
