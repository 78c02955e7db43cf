from django.apps import AppConfig


class MigrationProbeConfig(AppConfig):
    name = "tests.unit.migration_probe"
    label = "migration_probe"
