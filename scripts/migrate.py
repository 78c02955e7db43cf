"""Apply migrations, one container at a time: safe when several web containers start at once.

A PostgreSQL advisory lock, held on a connection of its own, serialises `migrate`: the first
container applies the migrations, the others wait for the lock and then find nothing to do.
PostgreSQL releases the lock when that connection ends, so a container that dies mid-migration
cannot leave it stuck. The wait is bounded by DJANGO_MIGRATE_LOCK_TIMEOUT seconds, with a
progress line every PROGRESS_INTERVAL_S. Exits 1 with one line when the wait times out or the
database fails (the migration that failed is rolled back; earlier ones stay applied), and 3 on
bad configuration, like every entry point.
"""

import io
import logging
import os
import re
import sys
import time

import django
import psycopg
from django.core.management import call_command
from django.db import Error as DjangoDatabaseError
from django.db import connections

from config.env import Env
from config.errors import exit_on_configuration_error, first_line
from config.preflight import exit_if_misconfigured

# Any fixed 64-bit number, the same in every container of this application.
MIGRATION_LOCK_ID = 0x636174735F6D6967  # "cats_mig"
POLL_INTERVAL_S = 1
PROGRESS_INTERVAL_S = 10
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

    def migration_in_progress(self) -> str | None:
        """The migration migrate had started ("Applying cats.0002_x...") but not finished."""
        started = re.match(r"\s*Applying (\S+?)\.\.\.", self.pending)
        return started[1] if started else None


def wait_for_lock(lock: psycopg.Connection, timeout: int) -> None:
    started = time.monotonic()
    reported = None
    while not lock.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK_ID]).fetchone()[0]:
        waited = time.monotonic() - started
        if waited >= timeout:
            sys.exit(
                f"error: another container has held the migration lock for {timeout} s "
                "(DJANGO_MIGRATE_LOCK_TIMEOUT); its migrations may still be running: see its "
                "logs, then restart this one or raise the timeout"
            )
        if reported is None or waited - reported >= PROGRESS_INTERVAL_S:
            logger.info(
                "another container is migrating; waiting for it to finish (%.0f of %d s)",
                waited, timeout,
                extra={"waited_s": round(waited, 1)},
            )  # fmt: skip
            reported = waited
        time.sleep(min(POLL_INTERVAL_S, timeout - waited))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    exit_if_misconfigured()
    with exit_on_configuration_error():
        timeout = Env().integer("DJANGO_MIGRATE_LOCK_TIMEOUT", 300, minimum=0, maximum=86_400)
    django.setup()
    output = LogLines()
    try:
        params = connections["default"].get_connection_params()
        with psycopg.connect(**params, autocommit=True) as lock:
            wait_for_lock(lock, timeout)
            logger.info("applying migrations")
            call_command("migrate", interactive=False, verbosity=1, stdout=output)
            output.close()
            lock.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])
    except (DjangoDatabaseError, psycopg.Error) as error:
        migration = output.migration_in_progress()
        failed = f"migration {migration}" if migration else "migrating"
        sys.exit(f"error: {failed} failed: {first_line(error)}")


if __name__ == "__main__":
    main()
