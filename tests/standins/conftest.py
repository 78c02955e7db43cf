"""Contract tests of the base images the project uses (tests/run standins).

Each test runs against every image of its repository that the project references (the names
tests/harness/standins provides: stand-ins here, the real images where a registry answers), so
a stand-in that drifts from the official image's documented behaviour fails here instead of
hiding a bug in the stack.
"""

import functools

import pytest

from tests.harness import REPO
from tests.harness.standins import images_by_repository

IMAGE_FIXTURES = {
    "python_image": "python",
    "postgres_image": "postgres",
    "nginx_image": "nginx",
    "redis_image": "redis",
    "prometheus_image": "prom/prometheus",
    "alertmanager_image": "prom/alertmanager",
    "node_exporter_image": "prom/node-exporter",
    "blackbox_exporter_image": "prom/blackbox-exporter",
    "nginx_exporter_image": "nginx/nginx-prometheus-exporter",
    "postgres_exporter_image": "quay.io/prometheuscommunity/postgres-exporter",
    "redis_exporter_image": "oliver006/redis_exporter",
}


@functools.cache
def project_images() -> dict[str, list[str]]:
    return images_by_repository(REPO)


# The monitoring set's images, for the tests that hold every one of them to its contract.
MONITORING_REPOSITORIES = [
    repository for fixture, repository in IMAGE_FIXTURES.items()
    if fixture not in ("python_image", "postgres_image", "nginx_image", "redis_image")
]  # fmt: skip


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for fixture, repository in IMAGE_FIXTURES.items():
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, project_images()[repository])
    if "monitoring_image" in metafunc.fixturenames:
        metafunc.parametrize("monitoring_image", [
            image for repository in MONITORING_REPOSITORIES
            for image in project_images()[repository]
        ])  # fmt: skip
