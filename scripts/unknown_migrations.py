"""Which migrations the database holds that this image's code does not know, as JSON.

tools/ops runs it in the image of the version a rollback returns to: a non-empty `unknown`
list means the newer release migrated the schema further, and the rollback must choose
between keeping that schema (safe for expand migrations) and reversing those migrations with
the newer code, back to this code's `latest` migration of each app (or `zero`).
With `--migrations APP.NAME...` those are compared and the database is not read: ./ops restore
asks whether an archive's schema is one this code can migrate forward from.
Exit 1 with one line when the database cannot be read, 3 on bad configuration.
"""

import argparse
import json
import os
import sys

import django
from django.db import DatabaseError, connections
from django.db.migrations.loader import MigrationLoader

from config.errors import first_line
from config.preflight import exit_if_misconfigured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--migrations", nargs="*", metavar="APP.NAME", help="compare these, not the database's"
    )
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    exit_if_misconfigured()
    django.setup()
    try:
        connection = None if args.migrations is not None else connections["default"]
        loader = MigrationLoader(connection, ignore_no_migrations=True)
    except DatabaseError as error:
        sys.exit(f"error: cannot read the applied migrations: {first_line(error)}")
    known = set(loader.disk_migrations)
    if args.migrations is not None:
        applied = {tuple(name.split(".", 1)) for name in args.migrations if "." in name}
    else:
        applied = set(loader.applied_migrations)
    unknown = sorted(applied - known)
    latest = dict(loader.graph.leaf_nodes())
    affected = sorted({app for app, _name in unknown})
    print(
        json.dumps(
            {
                "unknown": [f"{app}.{name}" for app, name in unknown],
                "targets": {app: latest.get(app, "zero") for app in affected},
            }
        )
    )


if __name__ == "__main__":
    main()
