"""The harness's own tests run without pytest-django (tests/run passes -p no:django)."""

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    for key in ("DJANGO_SETTINGS_MODULE", "django_find_project"):
        parser.addini(key, "pytest-django setting, unused by the harness's own tests")
