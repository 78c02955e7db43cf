"""WSGI entry point (gunicorn's sync or gthread worker): `config.wsgi:application`."""

from django.core.wsgi import get_wsgi_application

from config.errors import exit_on_configuration_error
from config.preflight import load_for_serving

with exit_on_configuration_error():
    load_for_serving()
    application = get_wsgi_application()
