"""Fixtures for the image layer: the production image, built once, and a real PostgreSQL.

Every test runs the image the way ops do (`docker run` with environment variables), against
the postgres image on a network of its own. The database's port is also published on
127.0.0.1 so a test can hold locks or read tables from the host while the web container runs.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
import pytest
import requests

from tests.harness import REPO
from tests.harness.base_images import postgres_image
from tests.harness.containers import Container, Containers
from tests.harness.docker import build_image, docker

WEB_IMAGE = "catcollector-test/web:latest"
POSTGRES_IMAGE = postgres_image(REPO)
SITE_HOST = "cats.example.com"
DB_ALIAS = "db"
DB_PASSWORD = "image-tests-password"  # noqa: S105 (throwaway database of one test)
WEB_PORT = 8000
MODES = ("wsgi", "asgi")


@pytest.fixture(scope="session")
def web_image() -> str:
    build_image(REPO, WEB_IMAGE)
    return WEB_IMAGE


def secret_key() -> str:
    return secrets.token_urlsafe(64)


@dataclass
class Database:
    containers: Containers
    network: str
    container: Container
    host_port: int
    env: dict[str, str] = field(default_factory=dict)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.host_port,
            user="postgres",
            password=DB_PASSWORD,
            dbname="postgres",
            autocommit=True,
        )

    def query(self, sql: str, *params: object) -> list[tuple]:
        with self.connect() as connection:
            return connection.execute(sql, params).fetchall()


def start_postgres(containers: Containers, network: str, *, wait: bool = True) -> Database:
    container = containers.run(
        POSTGRES_IMAGE,
        env={"POSTGRES_PASSWORD": DB_PASSWORD},
        options=[
            "--network", network, "--network-alias", DB_ALIAS,
            "--publish", "127.0.0.1::5432",
        ],
    )  # fmt: skip
    port = int(docker("port", container.name, "5432/tcp").stdout.split(":")[-1])
    database = Database(
        containers,
        network,
        container,
        port,
        env={"POSTGRES_HOST": DB_ALIAS, "POSTGRES_PASSWORD": DB_PASSWORD},
    )
    if wait:
        wait_for_postgres(database)
    return database


def wait_for_postgres(database: Database, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            database.query("SELECT 1")
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"postgres did not accept connections in {timeout}s:\n"
                    + database.container.logs()
                ) from None
            time.sleep(0.3)
        else:
            return


@pytest.fixture
def database(containers: Containers) -> Database:
    return start_postgres(containers, containers.network())


def web_env(database: Database | None = None, **extra: str) -> dict[str, str]:
    """What ops set for one web container (a plain-HTTP trial: no TLS in these tests)."""
    env = {
        "DJANGO_SECRET_KEY": secret_key(),
        "DJANGO_ALLOWED_HOSTS": SITE_HOST,
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECURE_COOKIES": "false",
    }
    if database is not None:
        env |= database.env
    return env | extra


@dataclass
class Web:
    container: Container
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs) -> requests.Response:
        headers = {"Host": SITE_HOST} | kwargs.pop("headers", {})
        return requests.get(
            self.url + path, headers=headers, timeout=30, allow_redirects=False, **kwargs
        )

    def log_lines(self) -> list[dict]:
        """Every stdout line as JSON (a line that is not JSON fails the test here)."""
        stdout = docker("logs", self.container.name).stdout
        return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def run_web(
    containers: Containers,
    image: str,
    *command: str,
    network: str | None = None,
    env: dict[str, str] | None = None,
    options: tuple[str, ...] = (),
    healthy: bool = True,
) -> Web:
    """Start the image detached, port 8000 published on loopback; wait until Docker's own
    HEALTHCHECK reports healthy unless told not to."""
    container = containers.run(
        image,
        *command,
        env=web_env() | (env or {}),
        options=[
            *(["--network", network] if network else []),
            "--publish", f"127.0.0.1::{WEB_PORT}",
            *options,
        ],
    )  # fmt: skip
    port = int(docker("port", container.name, f"{WEB_PORT}/tcp").stdout.split(":")[-1])
    web = Web(container, port)
    if healthy:
        wait_healthy(container)
    return web


def health(container: Container) -> str:
    state = container.inspect()["State"]
    if state["Status"] != "running":
        return state["Status"]
    return state.get("Health", {}).get("Status", "none")


def wait_healthy(container: Container, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while (status := health(container)) != "healthy":
        if status in ("exited", "dead", "unhealthy") or time.monotonic() > deadline:
            raise AssertionError(
                f"{container.describe()} is {status}, not healthy; logs:\n{container.logs()}"
            )
        time.sleep(0.3)


@pytest.fixture
def web_factory(containers: Containers, web_image: str) -> Callable[..., Web]:
    """web_factory(database, *command, env=..., options=..., healthy=True) -> Web"""

    def start(database: Database | None, *command: str, **kwargs) -> Web:
        if database is not None:
            kwargs["network"] = database.network
            kwargs["env"] = database.env | kwargs.get("env", {})
        return run_web(containers, web_image, *command, **kwargs)

    return start
