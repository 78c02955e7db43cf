"""A run that was killed leaves its containers, networks, volumes and swarm on the engine; the
next tests/run removes them before its engine layers (`leftovers --earlier-runs`) and keeps
what no test run made. Needs the engine that answers here (CI always has one)."""

import subprocess
import uuid

import pytest

from tests.harness import REPO
from tests.harness.base_images import dockerfile_base
from tests.harness.docker import RUN_LABEL, clean_env, docker
from tests.harness.leftovers import COMPOSE_PROJECT_LABEL

KILLED_RUN = "tr0dead0ff"


pytestmark = pytest.mark.usefixtures("engine")


def swarm_state() -> str:
    return docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()


def remove_earlier_runs() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["python", "-m", "tests.harness.leftovers", "--earlier-runs"], cwd=REPO,
        env=clean_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_what_a_killed_run_left_is_removed_and_nothing_else():
    assert swarm_state() == "inactive", "this test needs an engine in no swarm"
    suffix = uuid.uuid4().hex[:8]
    project = f"{KILLED_RUN}-stack"
    image = dockerfile_base(REPO, "nginx/Dockerfile", named_contexts=frozenset({"web"}))
    killed = {
        "network": f"killed-net-{suffix}",
        "volume": f"{project}_data-{suffix}",
        "container": f"killed-web-{suffix}",
    }
    foreign = f"not-a-test-{suffix}"
    docker("network", "create", "--label", f"{RUN_LABEL}={KILLED_RUN}", killed["network"])
    docker("volume", "create", "--label", f"{COMPOSE_PROJECT_LABEL}={project}", killed["volume"])
    docker(
        "create", "--name", killed["container"], "--label", f"{RUN_LABEL}={KILLED_RUN}",
        image, "true",
    )  # fmt: skip
    docker("network", "create", foreign)
    docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        node = docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
        docker("node", "update", "--label-add", f"{RUN_LABEL}={KILLED_RUN}", node)
        result = remove_earlier_runs()
        assert result.returncode == 0, result.stderr
        assert swarm_state() == "inactive"
        for kind, name in killed.items():
            assert f"removing {kind} {name}, left by a run that was killed" in result.stdout
            assert docker(kind, "inspect", name, check=False).returncode != 0, name
        assert docker("network", "inspect", foreign, check=False).returncode == 0
    finally:
        if swarm_state() != "inactive":
            docker("swarm", "leave", "--force", check=False)
        docker("container", "rm", "--force", killed["container"], check=False)
        docker("volume", "rm", "--force", killed["volume"], check=False)
        docker("network", "rm", killed["network"], foreign, check=False)


def test_a_swarm_no_test_run_labelled_is_kept():
    assert swarm_state() == "inactive", "this test needs an engine in no swarm"
    docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        result = remove_earlier_runs()
        assert result.returncode == 0, result.stderr
        assert swarm_state() == "active"
    finally:
        docker("swarm", "leave", "--force", check=False)
