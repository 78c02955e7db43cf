"""Wait until PostgreSQL accepts a real connection (login included), or give up loudly.

Run by the entrypoint before the web server starts. A TCP probe is not enough: PostgreSQL
listens before it accepts logins (initdb, recovery), and only a login proves the credentials.
Bounded by DATABASE_WAIT_TIMEOUT seconds; on timeout it exits 1 with one line naming the host,
the port and the last error. Bad configuration exits 3 with one line, like every entry point.
"""

import logging
import os
import sys
import time

import django
import psycopg
from django.db import connections

from config.env import Env
from config.errors import exit_on_configuration_error, first_line
from config.preflight import exit_if_misconfigured

RETRY_INTERVAL_S = 1
logger = logging.getLogger("entrypoint.wait_for_db")


def refused_for_good(error: psycopg.Error) -> bool:
    """Waiting cannot fix a refused login or a database that does not exist."""
    message = str(error)
    return "authentication failed" in message or (
        "database" in message and "does not exist" in message
    )


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    exit_if_misconfigured()
    with exit_on_configuration_error():
        timeout = Env().integer("DATABASE_WAIT_TIMEOUT", 60, minimum=0, maximum=3600)
    django.setup()
    database = connections["default"]
    where = f"{database.settings_dict['HOST']}:{database.settings_dict['PORT'] or 5432}"
    params = database.get_connection_params()
    connect_timeout = params["connect_timeout"]  # DATABASE_CONNECT_TIMEOUT

    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        # No attempt outlives the deadline, so the whole wait stays within the timeout.
        attempt = params | {"connect_timeout": max(1, min(connect_timeout, int(remaining)))}
        try:
            psycopg.connect(**attempt).close()
        except psycopg.Error as error:
            reason = first_line(error)
            if refused_for_good(error):
                sys.exit(f"error: PostgreSQL at {where} refused the connection: {reason}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                sys.exit(
                    f"error: PostgreSQL at {where} did not accept a connection within "
                    f"{timeout} s (DATABASE_WAIT_TIMEOUT); last error: {reason}"
                )
            waited = timeout - remaining
            logger.info(
                "waiting for PostgreSQL at %s (%.0f of %d s): %s",
                where, waited, timeout, reason,
                extra={"database": where, "waited_s": round(waited, 1)},
            )  # fmt: skip
            time.sleep(min(RETRY_INTERVAL_S, remaining))
        else:
            logger.info("PostgreSQL at %s accepts connections", where)
            return


if __name__ == "__main__":
    main()
