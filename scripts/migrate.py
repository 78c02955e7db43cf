"""Apply migrations, one container at a time: safe when several web containers start at once.

A PostgreSQL advisory lock, held on a connection of its own, serialises `migrate`: the first
container applies the migrations, the others wait for the lock and then find nothing to do.
PostgreSQL releases the lock when that connection ends, so a container that dies mid-migration
cannot leave it stuck.
"""

import io
import logging
import os

import django
import psycopg
from django.core.management import call_command
from django.db import connections

from config.preflight import exit_if_misconfigured

# Any fixed 64-bit number, the same in every container of this application.
MIGRATION_LOCK_ID = 0x636174735F6D6967  # "cats_mig"
logger = logging.getLogger("entrypoint.migrate")


class LogLines(io.TextIOBase):
    """migrate's progress ("Applying cats.0001_initial... OK") as JSON log lines, as it goes."""

    def __init__(self) -> None:
        self.pending = ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if line.strip():
                logger.info(line.strip())
        return len(text)

    def close(self) -> None:
        # A line is complete only at its newline: migrate writes "Applying x..." and flushes
        # before its " OK", so flush() must not end the line; close() writes what is left.
        if self.pending.strip():
            logger.info(self.pending.strip())
        self.pending = ""
        super().close()


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    exit_if_misconfigured()
    django.setup()
    params = connections["default"].get_connection_params()
    with psycopg.connect(**params, autocommit=True) as lock:
        if not lock.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK_ID]).fetchone()[0]:
            logger.info("another container is migrating; waiting for it to finish")
            lock.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
        logger.info("applying migrations")
        output = LogLines()
        call_command("migrate", interactive=False, verbosity=1, stdout=output)
        output.close()
        lock.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])


if __name__ == "__main__":
    main()
