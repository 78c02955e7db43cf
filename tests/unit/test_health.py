"""/healthz and /readyz: any Host, never redirected, read-only, honest about the database."""

import socket
import threading
import time

import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client
from django.test.utils import CaptureQueriesContext

LB_PROBE_HOSTS = ["10.0.3.17", "10.0.3.17:80", "[fd00::17]", "unknown.invalid"]


def probe(path: str, host: str = "10.0.3.17", method: str = "get", **headers):
    """A load balancer's probe: the VM's IP as Host, plain HTTP, no forwarding headers."""
    return getattr(Client(), method)(path, headers={"host": host, **headers})


# No django_db mark: pytest-django makes any database access in these tests raise.
@pytest.mark.parametrize("host", LB_PROBE_HOSTS)
def test_liveness_answers_any_host_without_redirect_or_database(host):
    response = probe("/healthz", host=host)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies


@pytest.mark.django_db
@pytest.mark.parametrize("host", LB_PROBE_HOSTS)
def test_readiness_answers_any_host_without_redirect(host):
    response = probe("/readyz", host=host)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies


def test_other_paths_still_reject_unknown_hosts_and_redirect_plain_http(settings):
    assert settings.SECURE_SSL_REDIRECT
    assert probe("/", host="10.0.3.17").status_code == 400
    redirect = Client().get("/", headers={"host": "cats.example.com"})
    assert redirect.status_code == 301
    assert redirect["Location"] == "https://cats.example.com/"


def test_liveness_is_served_for_head_and_refuses_writes():
    assert probe("/healthz", method="head").status_code == 200
    refused = probe("/healthz", method="post")
    assert refused.status_code == 405
    assert refused["Allow"] == "GET, HEAD"


@pytest.mark.django_db
def test_readiness_only_reads():
    connection = connections[DEFAULT_DB_ALIAS]
    with CaptureQueriesContext(connection) as queries:
        assert probe("/readyz").status_code == 200
    statements = [query["sql"].lstrip().split()[0].upper() for query in queries]
    assert statements
    assert set(statements) == {"SELECT"}


@pytest.mark.django_db
def test_readiness_reports_an_unapplied_migration():
    # The latest: Django plans nothing for a migration whose successor counts as applied.
    MigrationRecorder.Migration.objects.filter(app="cats").latest("id").delete()
    response = probe("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "1 unapplied migration(s)"}


@pytest.fixture
def database_at(django_db_blocker):
    """Point the default connection (and its pool) somewhere else for one test."""
    connection = connections[DEFAULT_DB_ALIAS]
    original = {
        "PORT": connection.settings_dict["PORT"],
        "OPTIONS": connection.settings_dict["OPTIONS"],
    }

    def reset() -> None:
        connection.close()
        connection.close_pool()

    def point(port: int, timeout: int | None = None) -> None:
        reset()
        options = dict(original["OPTIONS"])
        if timeout is not None:
            options["connect_timeout"] = timeout
            options["pool"] = {**options["pool"], "timeout": timeout}
        connection.settings_dict.update(PORT=port, OPTIONS=options)

    with django_db_blocker.unblock():
        yield point
        reset()
        connection.settings_dict.update(original)


def closed_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def test_readiness_fails_when_the_database_is_down(database_at, caplog):
    database_at(closed_port())
    response = probe("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "database unavailable"}
    assert "readiness: database unavailable" in caplog.text
    assert probe("/healthz").status_code == 200


def test_readiness_gives_up_on_a_silent_database_within_the_connect_timeout(database_at):
    """A server that accepts TCP but never answers (a hung host) must not hang the probe."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    timeout = 2
    database_at(listener.getsockname()[1], timeout=timeout)
    try:
        started = time.monotonic()
        response = probe("/readyz")
        elapsed = time.monotonic() - started
    finally:
        for conn in accepted:
            conn.close()
        listener.close()
    assert response.status_code == 503
    assert elapsed < timeout * 3, f"readiness took {elapsed:.1f}s with a {timeout}s timeout"
