"""ASGI entry point (uvicorn through gunicorn): `config.asgi:application`."""

from django.core.asgi import get_asgi_application

from config.errors import exit_on_configuration_error
from config.preflight import load_for_serving

with exit_on_configuration_error():
    load_for_serving("asgi")
    application = get_asgi_application()
