"""A named restore point in the WAL and the row count of every table at exactly that point, as JSON.

./ops backup's restore check restores the archive to this point in a scratch database and
compares its counts with these. The counts must be the database's state at the restore point,
to the row, while the site keeps writing: one session takes SHARE locks on every table (writers
wait; in-flight writes finish first, so all of them are committed and visible), creates the
restore point and exports its snapshot; a second session adopts that snapshot; the first commits,
releasing the writers, and the second counts at leisure. Writers wait for milliseconds, however
large the tables.
Exit 1 with one line when the database cannot be read or stays busy, 3 on bad configuration.
"""

import argparse
import json
import os
import sys
import time

import django
import psycopg
from django.db import connections
from psycopg import sql

from config.errors import first_line
from config.preflight import exit_if_misconfigured

TABLES = (
    "SELECT schemaname, relname FROM pg_stat_user_tables "
    "WHERE schemaname NOT LIKE 'pg\\_temp%' ORDER BY 1, 2"
)
# A writer holding its transaction longer than this makes the point wait for another try,
# rather than queueing every other writer behind the lock request.
LOCK_TIMEOUT = "2s"
TRIES = 5


def marked(params: dict, name: str) -> tuple[str, dict[str, int]]:
    with (
        psycopg.connect(**params, autocommit=True) as marking,
        psycopg.connect(**params, autocommit=True) as counting,
    ):
        tables = marking.execute(TABLES).fetchall()
        # Repeatable read takes its snapshot at the first query, not at SET or LOCK: after the
        # locks, so it sees every write the restore point follows.
        with marking.transaction():
            marking.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            marking.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(LOCK_TIMEOUT))
            for schema, table in tables:
                marking.execute(
                    sql.SQL("LOCK TABLE {} IN SHARE MODE").format(sql.Identifier(schema, table))
                )
            [lsn] = marking.execute("SELECT pg_create_restore_point(%s)::text", [name]).fetchone()
            [snapshot] = marking.execute("SELECT pg_export_snapshot()").fetchone()
            counting.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            counting.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(snapshot))
        counts = {
            f"{schema}.{table}": counting.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            ).fetchone()[0]
            for schema, table in tables
        }
        counting.execute("ROLLBACK")
    return lsn, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the restore point's name (recovery_target_name)")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    exit_if_misconfigured()
    django.setup()
    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    for attempt in range(TRIES):
        try:
            lsn, counts = marked(params, args.name)
            break
        except psycopg.errors.LockNotAvailable:
            time.sleep(attempt + 1)
        except psycopg.Error as error:
            sys.exit(f"error: cannot mark a restore point: {first_line(error)}")
    else:
        sys.exit(f"error: a writer held its tables for over {LOCK_TIMEOUT}, {TRIES} times")
    print(json.dumps({"name": args.name, "lsn": lsn, "counts": counts}))


if __name__ == "__main__":
    main()
