"""Unit tests run Django in-process against a real, throwaway PostgreSQL cluster.

pytest-django loads the settings while pytest configures, before any fixture exists, so the
environment the settings read is put in place in pytest_configure below: a private cluster,
a fresh secret, temporary static and media roots, and the production defaults for the rest.
Static files are collected the way the image build does it (DJANGO_BUILD_STATIC=1), and the
photo checks' slot files and the metrics files live in the scratch folder.
"""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import django
import pytest
from django.test import Client

from tests.harness import REPO, measurements
from tests.harness.postgres import Cluster, PostgresUnavailable, start_cluster
from tests.unit.support import SITE_HOST

# Every variable config.settings and config.gunicorn read, so a developer's shell cannot
# leak into a run.
CONFIG_PREFIXES = ("DJANGO_", "POSTGRES_", "DATABASE_", "GUNICORN_", "PROMETHEUS_")
CONFIG_NAMES = ("UPLOAD_MAX_MB",)

_state: dict = {}


def _clean_environ() -> None:
    for name in list(os.environ):
        if name.startswith(CONFIG_PREFIXES) or name in CONFIG_NAMES:
            del os.environ[name]


def pytest_configure(config: pytest.Config) -> None:
    if config.option.help or config.option.version:
        return
    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        raise pytest.UsageError(f"unit tests need PostgreSQL: {exc}") from None
    _state["cluster"] = cluster
    scratch = Path(tempfile.mkdtemp(prefix="cats-unit-"))
    _state["scratch"] = scratch
    _clean_environ()
    (scratch / "metrics").mkdir()
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "DJANGO_ALLOWED_HOSTS": SITE_HOST,
            "DJANGO_STATIC_ROOT": str(scratch / "static"),
            "DJANGO_MEDIA_ROOT": str(scratch / "media"),
            # What the image's Dockerfile sets, for config.gunicorn.
            "GUNICORN_PORT": "8000",
            "GUNICORN_METRICS_PORT": "8001",
            # What the entrypoint gives gunicorn: every process of the run shares its metrics
            # through files there, as gunicorn's workers do (config/metrics_files.py).
            "PROMETHEUS_MULTIPROC_DIR": str(scratch / "metrics"),
            **cluster.environ,
        }
    )
    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=REPO,
        env={
            key: value
            for key, value in os.environ.items()
            if key not in ("DJANGO_SECRET_KEY", *cluster.environ)
        }
        | {"DJANGO_BUILD_STATIC": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    if collect.returncode != 0:
        raise pytest.UsageError(f"collectstatic failed: {collect.stderr.strip()}")

    django.setup()
    from django.conf import settings  # noqa: PLC0415 (configured just above)

    # The photo checks' slot files, in the run's scratch folder rather than the host's
    # /dev/shm: a run writes only inside the checkout and the temporary folder.
    settings.PHOTO_CHECK_SLOT_DIR = str(scratch)


def pytest_unconfigure(config: pytest.Config) -> None:
    if cluster := _state.pop("cluster", None):
        cluster.stop()
    if scratch := _state.pop("scratch", None):
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    return _state["cluster"]


@pytest.fixture
def client():
    """A client whose requests arrive the way nginx forwards them behind an HTTPS load balancer."""
    return Client(headers={"host": SITE_HOST, "x-forwarded-proto": "https"})


@pytest.fixture
def member(client, django_user_model):
    """The `client` signed in: adding and editing cats needs that."""
    client.force_login(
        django_user_model.objects.create_user("member", "m@example.com", "pw-7Yq!x2")
    )
    return client


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


_CELERY_BEFORE = pytest.StashKey[dict]()


def _celery_configuration() -> dict:
    from config.celery import app  # noqa: PLC0415 (Django is set up in pytest_configure)

    # Celery's own settings, lowercase; the uppercase ones are Django's, which pytest-django
    # sets up and restores itself.
    return {key: value for key, value in dict(app.conf).items() if not key.isupper()}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    item.stash[_CELERY_BEFORE] = _celery_configuration()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """No test leaves the Celery app configured otherwise than it found it (checked once every
    fixture, monkeypatch's undo included, has run)."""
    result = yield
    before = item.stash[_CELERY_BEFORE]
    changed = sorted(k for k, v in _celery_configuration().items() if before.get(k) != v)
    assert not changed, f"{item.nodeid} left the Celery app's configuration changed: {changed}"
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    measurements.settle(item.nodeid, report.when, report.passed)
    return report
