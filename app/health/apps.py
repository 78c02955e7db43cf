from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "app.health"
    label = "health"
    verbose_name = "Health probes"
