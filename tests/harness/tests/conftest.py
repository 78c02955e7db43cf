"""The harness's own tests run without pytest-django (tests/run passes -p no:django)."""

import pytest

from tests.harness import ci
from tests.harness.docker import engine_problem


def pytest_addoption(parser: pytest.Parser) -> None:
    for key in ("DJANGO_SETTINGS_MODULE", "django_find_project"):
        parser.addini(key, "pytest-django setting, unused by the harness's own tests")


@pytest.fixture
def engine() -> None:
    """For the tests that need the engine that answers here: CI always has one (a failure
    there), elsewhere they skip without it."""
    problem = engine_problem()
    if problem is not None:
        if ci():
            pytest.fail(f"CI is set and no Docker engine answers: {problem}", pytrace=False)
        pytest.skip(f"no Docker engine answers ({problem})")
