"""Migrations run while the previous release still serves (./ops deploy), so each must be one
that release can work with: django-migration-linter refuses the others. The project's own
apps are checked here; the probe app proves the refusals (tests/unit/migration_probe)."""

import pytest
from django.apps import apps

from tests.unit.support import run_python

SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.unit.migration_settings"}
# Warnings count too: an index built without CONCURRENTLY locks writes while it builds. Last,
# since the option takes every word after it.
OPTIONS = ("--no-cache", "--warnings-as-errors")


def lint(*args: str):
    return run_python("manage.py", "lintmigrations", *args, *OPTIONS, env=SETTINGS)


def test_the_projects_migrations_are_backward_compatible():
    project_apps = sorted(c.label for c in apps.get_app_configs() if c.name.startswith("app."))
    assert "cats" in project_apps
    result = run_python(
        "manage.py", "lintmigrations", "--no-cache", "--include-apps", *project_apps,
        "--warnings-as-errors", env=SETTINGS,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("migration", "reason"),
    [
        ("0002_drop_column", "DROPPING columns"),
        ("0003_rename_column", "RENAMING columns"),
        ("0004_not_null_without_default", "NOT NULL constraint on columns"),
    ],
)
def test_backward_incompatible_migrations_are_refused(migration, reason):
    result = lint("migration_probe", migration)
    assert result.returncode == 1, result.stdout + result.stderr
    assert reason in result.stdout, result.stdout


def test_an_expand_migration_passes():
    result = lint("migration_probe", "0005_expand")
    assert result.returncode == 0, result.stdout + result.stderr
