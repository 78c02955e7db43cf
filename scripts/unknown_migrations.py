"""Which migrations the database holds that this image's code does not know, as JSON.

tools/ops runs it in the image of the version a rollback returns to: a non-empty `unknown`
list means the newer release migrated the schema further, and the rollback must choose
between keeping that schema (safe for expand migrations) and reversing those migrations with
the newer code, back to this code's `latest` migration of each app (or `zero`).
Exit 1 with one line when the database cannot be read, 3 on bad configuration.
"""

import json
import os
import sys

import django
from django.db import DatabaseError, connections
from django.db.migrations.loader import MigrationLoader

from config.errors import first_line
from config.preflight import exit_if_misconfigured


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    exit_if_misconfigured()
    django.setup()
    try:
        loader = MigrationLoader(connections["default"], ignore_no_migrations=True)
    except DatabaseError as error:
        sys.exit(f"error: cannot read the applied migrations: {first_line(error)}")
    known = set(loader.disk_migrations)
    unknown = sorted(set(loader.applied_migrations) - known)
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
