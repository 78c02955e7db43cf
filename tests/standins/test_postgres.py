"""The postgres image's documented contract (docker-library/postgres)."""

import re
import time
from pathlib import Path

import psycopg
import pytest

from tests.harness.docker import docker, image_config
from tests.harness.postgres import ContainerCluster
from tests.harness.standins import promised_version

COMPOSE_FILE = "tests/standins/compose/postgres-client.yaml"
READY_TIMEOUT_S = 90


def wait_ready(container, user: str = "postgres") -> None:
    """Ready for TCP clients: past initialisation, listening on all addresses."""
    container.wait_for_log(r"init process complete|Skipping initialization", READY_TIMEOUT_S)
    deadline = time.monotonic() + READY_TIMEOUT_S
    probe = ("pg_isready", "-h", "127.0.0.1", "-U", user, "-d", "postgres")
    while container.exec(*probe, check=False).returncode:
        assert time.monotonic() < deadline, f"not ready:\n{container.logs()}"
        time.sleep(0.3)


def query(container, sql: str, user: str = "postgres", database: str = "postgres") -> str:
    return container.exec(
        "psql", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", database, "-tAc", sql
    ).stdout.strip()


def test_refuses_to_initialise_without_a_password(containers, postgres_image):
    result = containers.run_once(postgres_image)
    assert result.returncode == 1
    assert "Database is uninitialized and superuser password is not specified" in result.stderr
    assert "POSTGRES_PASSWORD" in result.stderr


def test_password_and_password_file_together_are_refused(containers, postgres_image):
    env = {"POSTGRES_PASSWORD": "a", "POSTGRES_PASSWORD_FILE": "/run/secrets/pw"}
    result = containers.run_once(postgres_image, env=env)
    assert result.returncode == 1
    assert "both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set" in result.stderr


def test_initialises_from_file_secrets_initdb_args_and_scripts(
    containers, postgres_image, tmp_path: Path
):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "user").write_text("cats\n")
    (secrets / "password").write_text("from-a-file\n")
    initdb = tmp_path / "initdb"
    initdb.mkdir()
    (initdb / "10-schema.sql").write_text("CREATE TABLE visits (who text);\n")
    executable = initdb / "20-insert.sh"
    executable.write_text(
        '#!/bin/bash\nset -e\npsql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" '
        "-c \"INSERT INTO visits VALUES ('executed')\"\n"
    )
    executable.chmod(0o755)
    # Not executable: sourced into the entrypoint, so its $0 is the entrypoint's.
    (initdb / "30-sourced.sh").write_text(
        'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" '
        '-c "INSERT INTO visits VALUES (\'sourced by $(basename "$0")\')"\n'
    )
    (initdb / "40-ignored.txt").write_text("not run\n")
    # Readable by the postgres user the entrypoint switches to.
    for path in [secrets, initdb, *secrets.iterdir(), *initdb.iterdir()]:
        path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))

    db = containers.run(
        postgres_image,
        env={
            "POSTGRES_USER_FILE": "/run/secrets/user",
            "POSTGRES_PASSWORD_FILE": "/run/secrets/password",
            "POSTGRES_DB": "catdb",
            "POSTGRES_INITDB_ARGS": "--data-checksums --encoding=UTF8",
        },
        options=[
            "--volume", f"{secrets}:/run/secrets:ro",
            "--volume", f"{initdb}:/docker-entrypoint-initdb.d:ro",
        ],
    )  # fmt: skip
    wait_ready(db, user="cats")
    logs = db.logs()
    assert re.search(r"ignoring /docker-entrypoint-initdb.d/40-ignored.txt", logs)

    assert query(db, "SELECT who FROM visits ORDER BY who", "cats", "catdb").splitlines() == [
        "executed",
        "sourced by docker-entrypoint.sh",
    ]
    assert query(db, "SHOW data_checksums", "cats", "catdb") == "on"
    assert query(db, "SHOW server_encoding", "cats", "catdb") == "UTF8"
    assert query(db, "SHOW listen_addresses", "cats", "catdb") == "*"
    # POSTGRES_DB replaces the default database named after the user.
    databases = query(db, "SELECT datname FROM pg_database", "cats", "catdb").splitlines()
    assert "catdb" in databases
    assert "cats" not in databases


def test_password_login_from_another_container_and_from_the_host(
    compose_project, postgres_image, free_port
):
    port = free_port()
    env = {
        "POSTGRES_IMAGE": postgres_image,
        "POSTGRES_USER": "cats",
        "POSTGRES_PASSWORD": "s3cret with spaces",
        "POSTGRES_DB": "catdb",
        "DB_PORT": str(port),
    }
    project = compose_project(
        COMPOSE_FILE, env={**env, "CLIENT_PASSWORD": env["POSTGRES_PASSWORD"]}
    )
    project.up("db")

    who = project.run("client", "psql", "-tAc", "SELECT current_user || '@' || current_database()")
    assert who.stdout.strip() == "cats@catdb"

    refused = project.run(
        "client", "psql", "-tAc", "SELECT 1", env={"PGPASSWORD": "wrong"}, check=False
    )
    assert refused.returncode != 0
    assert "password authentication failed" in refused.stderr

    with psycopg.connect(
        host="127.0.0.1", port=port, user="cats", password=env["POSTGRES_PASSWORD"], dbname="catdb"
    ) as connection:
        assert connection.execute("SELECT 40 + 2").fetchone() == (42,)


def test_trust_auth_method_needs_no_password(containers, postgres_image):
    network = containers.network()
    db = containers.run(
        postgres_image,
        env={"POSTGRES_HOST_AUTH_METHOD": "trust"},
        options=["--network", network, "--network-alias", "db"],
    )
    wait_ready(db)
    result = containers.run_once(
        postgres_image, "psql", "-h", "db", "-U", "postgres", "-tAc", "SELECT 'in'",
        options=["--network", network],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "in"


@pytest.mark.parametrize("user_option", [[], ["--user", "999"]], ids=["as-root", "as-999"])
def test_server_runs_as_uid_999(containers, postgres_image, user_option):
    db = containers.run(postgres_image, env={"POSTGRES_PASSWORD": "pw"}, options=user_option)
    wait_ready(db)
    status = db.exec("cat", "/proc/1/status").stdout
    assert re.search(r"^Uid:\s+999\s+999\s+999\s+999$", status, re.MULTILINE), status
    assert re.search(r"^Gid:\s+999\s", status, re.MULTILINE), status
    assert db.exec("id", "-un", "999").stdout.strip() == "postgres"
    assert query(db, "SELECT 1") == "1"


def test_stop_signal_is_sigint_a_fast_shutdown_and_restart_keeps_the_data(
    containers, postgres_image
):
    assert image_config(postgres_image)["StopSignal"] == "SIGINT"
    db = containers.run(postgres_image, env={"POSTGRES_PASSWORD": "pw"})
    wait_ready(db)
    query(db, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
    db.stop(timeout_s=30)
    assert db.inspect()["State"]["ExitCode"] == 0
    assert "received fast shutdown request" in db.logs()

    docker("start", db.name)
    wait_ready(db)
    assert "appears to contain a database; Skipping initialization" in db.logs()
    assert query(db, "SELECT n FROM kept") == "7"


def test_image_configuration(containers, postgres_image):
    config = image_config(postgres_image)
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PGDATA"] == "/var/lib/postgresql/data"
    assert "/var/lib/postgresql/data" in config["Volumes"]
    assert "5432/tcp" in config["ExposedPorts"]
    assert config["Cmd"] == ["postgres"]
    tools = containers.run_once(
        postgres_image,
        "sh",
        "-c",
        "command -v pg_isready && command -v psql && command -v postgres",
    )
    assert tools.returncode == 0, tools.stderr
    assert len(tools.stdout.split()) == 3


def test_version_is_the_tags(containers, postgres_image):
    result = containers.run_once(postgres_image, "postgres", "--version")
    version = re.search(r"PostgreSQL\) (\d+(?:\.\d+)*)", result.stdout).group(1)
    wanted = promised_version(postgres_image)
    assert version == wanted or version.startswith(wanted + ".")


def test_the_unit_layers_postgres_runs_in_this_image_where_the_host_has_none():
    """tests/harness/postgres.py's container cluster, as the unit layer uses it on a host
    without PostgreSQL's server binaries: reachable on loopback with its password, durability
    off, gone after stop()."""
    cluster = ContainerCluster().start()
    try:
        assert cluster.psql("SHOW fsync") == "off"
        cluster.psql("CREATE TABLE probe (n int)")
        cluster.psql("INSERT INTO probe VALUES (1), (2)")
        assert cluster.psql("SELECT sum(n) FROM probe") == "3"
        assert cluster.environ["POSTGRES_PORT"] == str(cluster.port)
    finally:
        cluster.stop()
    assert docker("container", "inspect", cluster.name, check=False).returncode != 0
