"""The stack files against compose.yaml and .env.example, read without a swarm: the settings an
operator sets reach the same containers under both, every variable is in the one table of
variables, and the postgres image's tag has one home (compose.yaml)."""

import json
import re
import subprocess

import pytest

from tests.harness import REPO
from tests.harness.base_images import postgres_image
from tests.harness.docker import clean_env
from tests.stack.support import env_example_variables
from tests.swarm.support import STACK_FILE, documented_postgres_image

STACK_FILES = sorted(path.name for path in REPO.glob("stack*.yaml"))
# The secret values themselves: under swarm only as secrets, through their _FILE variables.
SECRET_VALUES = {"DATABASE_URL", "DJANGO_SECRET_KEY_FALLBACKS", "DJANGO_EMAIL_HOST_PASSWORD"}
# The stack's own: nginx names the web service rather than the active release's alias.
STACK_ONLY = {"nginx": {"NGINX_UPSTREAM_HOST"}}
# Compose's own: whether DJANGO_ALLOWED_HOSTS was set (`${...:+true}`, an interpolation the
# stack's parser refuses). Without it nginx drops unknown hosts, the production behaviour.
# And the continuous archive's (docs/operations.md, Backups), which the swarm does not run.
COMPOSE_ONLY = {
    "nginx": {"NGINX_HOSTS_CONFIGURED"},
    "db": {"OPS_BACKUP_REMOTE", "PGBACKREST_PG1_USER"},
}


def environment_names(file: str) -> dict[str, set[str]]:
    """Per service, the variables the file gives its containers (compose's parser, which reads
    both kinds of file, uninterpolated)."""
    result = subprocess.run(
        ["docker", "compose", "--project-name", "probe", "--file", file, "config",
         "--no-interpolate", "--format", "json"],
        cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    services = json.loads(result.stdout)["services"]
    return {name: set(service.get("environment") or {}) for name, service in services.items()}


def test_the_stack_files_are_found():
    assert STACK_FILES == ["stack.nfs.yaml", "stack.yaml"]


def test_every_variable_the_stack_files_read_is_in_env_example():
    read = set()
    for file in STACK_FILES:
        read |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (REPO / file).read_text()))
    assert {"APP_VERSION", "POSTGRES_IMAGE", "NFS_SERVER"} <= read
    assert sorted(read - set(env_example_variables())) == []


@pytest.mark.parametrize("service", ["db", "db-roles", "web", "nginx"])
def test_the_stack_passes_what_compose_passes(service):
    """A setting in .env reaches the same service under swarm as under compose."""
    compose = environment_names("compose.yaml")[service]
    stack = environment_names(STACK_FILE)[service]
    expected = (SECRET_VALUES if service == "web" else set()) | COMPOSE_ONLY.get(service, set())
    assert compose - stack == expected
    assert stack - compose == STACK_ONLY.get(service, set())


def resolved_environment(file: str, service: str) -> dict[str, str]:
    """The variables the file gives the service's containers, interpolated (compose's parser)."""
    result = subprocess.run(
        ["docker", "compose", "--project-name", "probe", "--file", file, "config",
         "--format", "json"],
        cwd=REPO, env=clean_env({"APP_VERSION": "x", "NGINX_VERSION": "x", "POSTGRES_IMAGE": "x"}),
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)["services"][service]["environment"]


def test_web_signs_in_as_the_same_role_under_both():
    """The role's name is written in both files (swarm reads no compose file); under both,
    db-roles makes the role web signs in as, with the password web reads."""
    for file in ("compose.yaml", STACK_FILE):
        web = resolved_environment(file, "web")
        roles = resolved_environment(file, "db-roles")
        assert web["POSTGRES_USER"] == roles["POSTGRES_APP_USER"] == "catcollector_app", file
        assert web["POSTGRES_PASSWORD_FILE"] == roles["POSTGRES_APP_PASSWORD_FILE"], file


def test_the_postgres_image_is_the_db_images_base():
    """The stack names no postgres tag of its own; the documented derivation gives exactly the
    official image compose's db image starts from (the swarm layer deploys with it and checks the
    db task runs it)."""
    for file in STACK_FILES:
        assert not re.search(r"image:\s*['\"]?postgres", (REPO / file).read_text()), file
    assert documented_postgres_image() == postgres_image(REPO)
    unset = subprocess.run(
        ["docker", "stack", "config", "--compose-file", STACK_FILE],
        cwd=REPO, env=clean_env({"APP_VERSION": "x", "NGINX_VERSION": "x"}),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert unset.returncode != 0
    assert "POSTGRES_IMAGE to compose.yaml's db image" in unset.stderr
