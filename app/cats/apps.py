from django.apps import AppConfig


class CatsConfig(AppConfig):
    name = "app.cats"
    label = "cats"
    verbose_name = "Cats"
