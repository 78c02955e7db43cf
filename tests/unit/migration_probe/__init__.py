"""Migrations a deploy must refuse (tests/unit/test_migrations.py), one per file after the
first; never migrated, only linted."""
