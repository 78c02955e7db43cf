"""The db service's settings from compose.yaml, tried on the postgres image itself."""

import json
import subprocess
import time

import pytest

from tests.harness import REPO
from tests.harness.docker import docker

BOOT_TIMEOUT_S = 60


COMPOSE = ["docker", "compose", "--env-file", ".env.example", "-f", "compose.yaml"]


@pytest.fixture(scope="module")
def db_service() -> dict:
    """db's settings, with its image (postgres/) built as compose builds it."""
    config = subprocess.run([*COMPOSE, "config", "--format", "json"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    subprocess.run([*COMPOSE, "build", "db"], cwd=REPO, capture_output=True, text=True,
                   check=True, timeout=900)  # fmt: skip
    return json.loads(config)["services"]["db"]


@pytest.fixture
def password_dir(tmp_path):
    """The password as the secrets volume holds it: root-owned, mode 0440."""
    (tmp_path / "postgres_password").write_text("a-password")
    (tmp_path / "postgres_password").chmod(0o440)
    tmp_path.chmod(0o755)
    return tmp_path


def start_db(containers, service: dict, password_dir, *, without: str = "", extra=()):
    """The postgres image with db's user, capabilities, read-only root and tmpfs mounts."""
    options = ["--read-only", "--cap-drop", "ALL", *extra]
    options += [arg for cap in service["cap_add"] if cap != without for arg in ("--cap-add", cap)]
    options += [arg for opt in service["security_opt"] for arg in ("--security-opt", opt)]
    options += [arg for mount in service["tmpfs"] for arg in ("--tmpfs", mount)]
    options += ["--volume", f"{password_dir}:/run/secrets/catcollector:ro"]
    # A variable compose leaves null comes from the host's environment when set: none here.
    env = {name: value for name, value in service["environment"].items() if value is not None}
    return containers.run(service["image"], env=env, options=options)


def healthcheck(service: dict) -> list[str]:
    kind, command = service["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    return ["sh", "-c", command.replace("$$", "$")]


def healthy_or_exited(container, service: dict) -> str:
    """'healthy' once db's own healthcheck passes, or 'exited' if the container stops first."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while time.monotonic() < deadline:
        if container.status() == "exited":
            return "exited"
        if container.exec(*healthcheck(service), check=False).returncode == 0:
            return "healthy"
        time.sleep(0.5)
    raise AssertionError(
        f"db neither healthy nor stopped in {BOOT_TIMEOUT_S}s:\n{container.logs()}"
    )


def boot_then_restart_after_drift(db, service: dict) -> list[str]:
    """First boot, then a restart after the data folder's mode drifted (as after restoring a
    backup): the entrypoint walks the postgres-owned folder as root, then puts 0700 back."""
    outcomes = [healthy_or_exited(db, service)]
    if outcomes[0] == "healthy":
        db.exec("chmod", "0755", "/var/lib/postgresql/data", user="postgres")
        docker("restart", "--time", "30", db.name, timeout=90)
        outcomes.append(healthy_or_exited(db, service))
    return outcomes


def test_db_boots_and_restarts_with_its_capabilities(containers, db_service, password_dir):
    db = start_db(containers, db_service, password_dir)
    assert boot_then_restart_after_drift(db, db_service) == ["healthy", "healthy"], db.logs()
    assert db.exec("stat", "-c", "%a", "/var/lib/postgresql/data").stdout.strip() == "700"


@pytest.mark.parametrize("capability", ["CHOWN", "DAC_READ_SEARCH", "SETGID", "SETUID"])
def test_db_needs_each_of_its_capabilities(containers, db_service, password_dir, capability):
    assert capability in db_service["cap_add"]
    db = start_db(containers, db_service, password_dir, without=capability)
    assert boot_then_restart_after_drift(db, db_service)[-1] == "exited", db.logs()


def test_db_healthcheck_waits_for_tcp_not_the_initdb_socket(
    containers, db_service, password_dir, tmp_path
):
    """During initdb the entrypoint runs a temporary server on the unix socket only, then stops
    it: a socket check would call the database ready too early."""
    scripts = tmp_path / "initdb"
    scripts.mkdir()
    slow = scripts / "slow.sh"
    slow.write_text("#!/bin/sh\nsleep 8\n")
    slow.chmod(0o755)
    scripts.chmod(0o755)
    db = start_db(
        containers, db_service, password_dir,
        extra=["--volume", f"{scripts}:/docker-entrypoint-initdb.d:ro"],
    )  # fmt: skip

    db.wait_for_log("running /docker-entrypoint-initdb.d/slow.sh")
    # The temporary server answers on the socket while the script runs...
    assert db.exec("pg_isready", "--quiet", check=False).returncode == 0
    # ... and the healthcheck still says no.
    assert db.exec(*healthcheck(db_service), check=False).returncode != 0
    assert healthy_or_exited(db, db_service) == "healthy", db.logs()
    assert "PostgreSQL init process complete" in db.logs()
