"""tests/run on a machine it should not load: an engine that runs someone else's containers is
refused in one line, and a Docker without the compose plugin is named as such. Both need the
engine that answers here (CI always has one; elsewhere they skip without it)."""

import os
import subprocess
import uuid

import pytest

from tests.harness import REPO
from tests.harness.base_images import dockerfile_base
from tests.harness.docker import clean_env, docker

pytestmark = pytest.mark.usefixtures("engine")


def test_an_engine_running_containers_the_tests_did_not_make_is_refused():
    name = f"not-a-test-{uuid.uuid4().hex[:8]}"
    image = dockerfile_base(REPO, "nginx/Dockerfile", named_contexts=frozenset({"web"}))
    docker("run", "--detach", "--name", name, "--entrypoint", "sleep", image, "60")
    try:
        result = subprocess.run(
            ["python", "-m", "tests.harness.engine_guard"], cwd=REPO, env=clean_env(),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        docker("rm", "--force", name)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("engine: it runs containers tests/run did not make (")
    assert name in line


def test_a_docker_without_the_compose_plugin_is_named(tmp_path):
    """DOCKER_CONFIG points at an empty folder: the CLI finds no plugin, as for a user whose
    Docker has none. DOCKER_HOST set (the engine that answers) rules out provisioning one."""
    endpoint = docker("context", "inspect", "--format", "{{.Endpoints.docker.Host}}").stdout
    env = clean_env({"DOCKER_CONFIG": str(tmp_path), "DOCKER_HOST": endpoint.strip()})
    env["PATH"] = os.environ["PATH"]
    result = subprocess.run(
        [str(REPO / "tests/harness/provision-engine")], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("engine: docker compose is missing: the tests need the Docker Compose")
    assert "docs.docker.com/compose/install" in line
