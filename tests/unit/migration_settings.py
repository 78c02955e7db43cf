"""The project's settings plus what linting migrations needs: the linter's management command
and, for the tests that prove it refuses what it must, the probe app of tests/unit."""

from config.settings import *  # noqa: F403 (the project's settings, unchanged)
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_migration_linter", "tests.unit.migration_probe"]

# Contract steps (docs/operations.md, Migrations), each reviewed: a drop of a column that no
# release you may roll back to uses any more. Name: the comment says which release stopped.
CONTRACT_MIGRATIONS: list[str] = []
MIGRATION_LINTER_OPTIONS = {"ignore_name": CONTRACT_MIGRATIONS}
