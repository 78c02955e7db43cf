"""Each override's section of docs/operations.md followed as written, then the updates an
operator makes: a first `./ops deploy`, a deploy of an app change, a deploy of a proxy change
(a new nginx container). Through all three, what the override is for keeps working: TLS
still answers, the operator's own secrets still open the database, the external database stays
the only one, the worker stays on. A stack started by hand with other compose files than
COMPOSE_FILE names is refused before anything changes.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator

import pytest
import requests
import urllib3

from tests.harness import REPO
from tests.harness.base_images import postgres_image
from tests.harness.containers import Container, Containers, slug
from tests.harness.polling import wait_until
from tests.harness.ports import free_port
from tests.harness.tls import self_signed_certificate
from tests.ops.conftest import OpsProject, project_copy
from tests.stack.support import SITE_HOST, Client, png_bytes

BOUND_S = 120
CSS = "app/cats/static/cats/style.css"
NGINX_CONF = "nginx/nginx.conf"
# Test only: the network the external database is on, which web reaches as it would a VPC's
# (tests/stack/test_config.py boots the same).
EXTERNAL_DB_NETWORK = """\
services:
  web:
    networks: [external-db]
networks:
  external-db:
    name: {network}
    external: true
"""


@pytest.fixture
def project(request, run_id: str, tmp_path) -> Iterator[OpsProject]:
    name = f"{run_id}-override-{slug(request.node.name.removeprefix('test_'), 12)}"
    with project_copy(name, tmp_path, {"DJANGO_ALLOWED_HOSTS": SITE_HOST}) as copy:
        yield copy


def add_to_env(project: OpsProject, **values: str) -> None:
    env = project.directory / ".env"
    env.write_text(env.read_text() + "".join(f"{k}={v}\n" for k, v in values.items()))


def readyz(project: OpsProject) -> int:
    return requests.get(project.site.url("/readyz"), timeout=15).status_code


def three_deploys(project: OpsProject, holds: Callable[[str], None]) -> None:
    """A first deploy, an app change, a proxy change; `holds(version)` after each."""
    project.ops("deploy", "a", "--build")
    holds("a")
    project.edit(CSS, "button {", ".override-b { margin: 0; }\nbutton {")
    project.ops("deploy", "b", "--build")
    holds("b")
    project.edit(NGINX_CONF, "events {", "# a new proxy\nevents {")
    replaced = project.ops("deploy", "c", "--build")
    assert "nginx replaced" in replaced.stdout, replaced.stdout
    holds("c")


def over_tls(port: int, path: str) -> requests.Response:
    with urllib3.warnings.catch_warnings():
        urllib3.warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        return requests.get(
            f"https://127.0.0.1:{port}{path}", headers={"Host": SITE_HOST}, timeout=15,
            verify=False,  # noqa: S501 # the test's own self-signed certificate
        )  # fmt: skip


def test_tls_at_nginx(project, tmp_path):
    """operations.md, TLS: the certificate's folder in NGINX_TLS_DIR, the override in
    COMPOSE_FILE, then ./ops deploy. The proxy change replaces nginx: still with TLS."""
    https_port = free_port()
    add_to_env(
        project, NGINX_TLS_DIR=str(self_signed_certificate(tmp_path / "tls")),
        COMPOSE_FILE="compose.yaml:compose.tls.yaml", HTTPS_BIND="127.0.0.1",
        HTTPS_PORT=str(https_port),
    )  # fmt: skip

    def holds(version: str) -> None:
        page = over_tls(https_port, "/")
        assert page.status_code == 200, version
        assert page.headers["Strict-Transport-Security"].startswith("max-age=")

    three_deploys(project, holds)


def test_secrets_from_files_of_your_own(project, tmp_path):
    """operations.md, Secrets: the three files in SECRETS_DIR, the override in COMPOSE_FILE.
    First as the docs before this one said, by hand with -f and nothing in .env: ./ops then
    refuses, naming the line to add, and changes nothing; with it, every deploy opens the
    database as web's role with the operator's password for it."""
    folder = tmp_path / "secrets"
    folder.mkdir()
    password = secrets.token_urlsafe(24)
    (folder / "postgres_password").write_text(secrets.token_urlsafe(24))
    (folder / "postgres_app_password").write_text(password)
    (folder / "django_secret_key").write_text(secrets.token_urlsafe(50))
    for path in folder.iterdir():
        path.chmod(0o444)
    add_to_env(project, SECRETS_DIR=str(folder))
    project.compose("-f", "compose.yaml", "-f", "compose.secrets.yaml", "up", "--detach", "--wait")
    web_before = project.container_ids("web")

    refused = project.ops("deploy", "a", "--build", check=False)
    assert refused.returncode == 1
    [reason] = refused.stderr.splitlines()
    assert "the running containers were created with compose.secrets.yaml, which COMPOSE_FILE " in (
        reason
    )
    assert "put COMPOSE_FILE=compose.yaml:compose.secrets.yaml in " in reason
    assert project.container_ids("web") == web_before
    assert readyz(project) == 200

    add_to_env(project, COMPOSE_FILE="compose.yaml:compose.secrets.yaml")

    def holds(version: str) -> None:
        assert readyz(project) == 200, version
        database = project.compose("exec", "-T", "web", "cat", "/run/secrets/postgres_app_password")
        assert database.stdout == password

    three_deploys(project, holds)


@pytest.fixture
def external_database(run_id: str) -> Iterator[tuple[str, Container]]:
    """(its network, the container): a PostgreSQL server outside the project. Requested
    before `project`, so it goes only once the project's containers have left its network."""
    containers = Containers(run_id, "external-db")
    try:
        network = containers.network()
        database = containers.run(
            postgres_image(REPO),
            env={"POSTGRES_USER": "ext", "POSTGRES_PASSWORD": "ext-pw", "POSTGRES_DB": "extdb"},
            options=["--network", network, "--network-alias", "external-db"],
        )
        wait_until(
            lambda: database.exec("pg_isready", "--quiet", "--host=127.0.0.1", "--username=ext",
                                  check=False).returncode == 0,
            60, what="the external database ready",
        )  # fmt: skip
        yield network, database
    finally:
        problems = containers.remove_all()
        assert not problems, problems


def test_an_external_database(external_database, project):
    """operations.md, External database: DATABASE_URL and the override in COMPOSE_FILE (plus
    the test's network file, as an operator's own override would route to the database)."""
    network, database = external_database
    project.write("external-db-network.yaml", EXTERNAL_DB_NETWORK.format(network=network))
    add_to_env(
        project, DATABASE_URL="postgres://ext:ext-pw@external-db:5432/extdb",
        COMPOSE_FILE="compose.yaml:compose.external-db.yaml:external-db-network.yaml",
    )  # fmt: skip

    def holds(version: str) -> None:
        assert readyz(project) == 200, version
        assert project.container_ids("db") == []
        migrated = database.exec(
            "psql", "--username=ext", "--dbname=extdb", "--tuples-only", "--no-align",
            "--command=SELECT count(*) FROM django_migrations WHERE app = 'cats'",
        ).stdout.strip()  # fmt: skip
        assert int(migrated) > 0, version

    three_deploys(project, holds)


def test_the_worker(project):
    """operations.md, Background work: COMPOSE_FILE with compose.worker.yaml from the start;
    after every deploy a worker of that release is up and makes an upload's thumbnail."""
    add_to_env(project, COMPOSE_FILE="compose.yaml:compose.worker.yaml")
    cats: list[str] = []

    def holds(version: str) -> None:
        if not cats:
            project.create_superuser()
        workers = project.compose("ps", "--format", "{{.Image}} {{.Health}}", "worker")
        assert re.fullmatch(rf"\S+:{version} healthy", workers.stdout.strip()), workers.stdout
        client = Client(project.site)
        client.log_in()
        page = client.create_cat(f"worker {version}", png_bytes((640, 480)))
        cats.append(page)
        deadline = time.monotonic() + BOUND_S
        cat_id = re.fullmatch(r"/cats/(\d+)/", page).group(1)
        while not client.get(f"/api/cats/{cat_id}/").json()["thumbnail_url"]:
            assert time.monotonic() < deadline, f"no thumbnail for {version}'s upload"
            time.sleep(0.5)

    three_deploys(project, holds)
