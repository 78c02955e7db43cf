from django.apps import AppConfig


class CatsConfig(AppConfig):
    name = "app.cats"
    label = "cats"
    verbose_name = "Cats"

    def ready(self) -> None:
        # Its receivers: the models send, this module decides who makes the thumbnail.
        from app.cats import dispatch  # noqa: F401, PLC0415
