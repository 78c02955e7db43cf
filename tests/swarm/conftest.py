"""Fixtures of the swarm layer: this engine as a single-node swarm, the images built once, and
one stack per module.

The engine is shared (tests/run holds it for the whole run), so the layer refuses to start on
an engine that is already in a swarm, and always leaves what it made: the stack, its volumes
and secrets, the swarm itself (which takes its overlay networks with it) and the bridge that
`swarm init` added. The node carries the run's label, so a swarm a crashed run left behind is
found and left by the leftovers check (tests/harness/leftovers.py).

A module's tests are the scenes of one stack's life, in order (as in tests/ops): the read-only
ones first, then those that scale, update and roll back.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import REPO
from tests.harness.balancer import BRIDGES, Balancer, balancer
from tests.harness.containers import slug
from tests.harness.docker import RUN_LABEL, build_image, docker, image_config
from tests.harness.polling import wait_until
from tests.harness.ports import free_port
from tests.stack.support import UP_BOUND_S
from tests.swarm.support import STACK_LABEL, SwarmStack, documented_postgres_image

WEB = "catcollector-test/swarm-web"
NGINX = "catcollector-test/swarm-nginx"
GATEWAY_BRIDGE = "docker_gwbridge"
STOP_BOUND_S = 120
# The settings naming the swarm secrets docs/swarm.md creates before the first deploy.
SECRET_SETTINGS = (
    "DJANGO_SECRET_KEY_SWARM_SECRET",
    "POSTGRES_PASSWORD_SWARM_SECRET",
    "POSTGRES_APP_PASSWORD_SWARM_SECRET",
)
# The next release: the same image with a changed stylesheet, collected again as the build
# does (so it gets a new hashed name) and a version of its own. Derived from the first rather
# than built from an edited copy of the checkout: only the release's files matter here.
NEXT_RELEASE = """FROM {base}
USER root
RUN printf '\\n.release-v2 {{ color: inherit; }}\\n' >> /app/app/cats/static/cats/style.css \\
    && DJANGO_BUILD_STATIC=1 python manage.py collectstatic --noinput --verbosity 0
USER {user}
ENV APP_VERSION=v2
LABEL org.opencontainers.image.version=v2
"""
# A release that starts and serves but never passes its health check.
NEVER_HEALTHY = """FROM {base}
USER root
RUN printf 'import sys\\nsys.exit("unhealthy: this release never passes its probe")\\n' \\
    > /app/scripts/healthcheck.py
USER {user}
ENV APP_VERSION=broken
LABEL org.opencontainers.image.version=broken
"""


@dataclass(frozen=True)
class Images:
    web: str
    nginx: str

    def release(self, version: str) -> str:
        return f"{self.web}:{version}"


def derive(base: str, dockerfile: str, tag: str, directory: Path) -> None:
    directory.mkdir(parents=True)
    user = image_config(base)["User"]
    (directory / "Dockerfile").write_text(dockerfile.format(base=base, user=user))
    build_image(directory, tag)


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    """v1 built from the checkout as ./ops builds a release; v2 and a never-healthy release
    derived from it. Stable tags: a rebuild reuses the build cache."""
    built = Images(WEB, NGINX)
    build_image(REPO, built.release("v1"), build_args={"VERSION": "v1"})
    build_image(REPO / "nginx", f"{NGINX}:v1", build_args={"VERSION": "v1"})
    work = tmp_path_factory.mktemp("swarm-images")
    derive(built.release("v1"), NEXT_RELEASE, built.release("v2"), work / "v2")
    derive(built.release("v2"), NEVER_HEALTHY, built.release("broken"), work / "broken")
    return built


@pytest.fixture(scope="session")
def swarm(run_id: str) -> Iterator[str]:
    """This engine as a one-node swarm, labelled for the database (docs/swarm.md); left at the
    end whatever happened."""
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    if state != "inactive":
        pytest.fail(
            f"this engine's swarm state is {state!r}: the swarm layer needs an engine in no "
            "swarm (if a previous run left one: docker swarm leave --force)",
            pytrace=False,
        )
    bridge_existed = docker("network", "inspect", GATEWAY_BRIDGE, check=False).returncode == 0
    docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        node = docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
        docker(
            "node", "update", "--label-add", f"{RUN_LABEL}={run_id}",
            "--label-add", "catcollector.db=true", node,
        )  # fmt: skip
        yield node
    finally:
        docker("swarm", "leave", "--force")
        if not bridge_existed:
            docker("network", "rm", GATEWAY_BRIDGE, check=False)


def stack_containers(name: str) -> list[str]:
    return docker(
        "ps", "--all", "--quiet", "--filter", f"label={STACK_LABEL}={name}"
    ).stdout.split()


def remove_stack(stack: SwarmStack) -> None:
    """Services, then (once their containers are gone) volumes, secrets and networks."""
    docker("stack", "rm", stack.name, check=False)
    wait_until(lambda: not stack_containers(stack.name), STOP_BOUND_S, what="stack stopped")
    # By name as well: a volume is created on a node the first time a task there mounts it.
    volumes = set()
    for selector in (f"label={STACK_LABEL}={stack.name}", f"name={stack.name}_"):
        volumes |= set(docker("volume", "ls", "--quiet", "--filter", selector).stdout.split())
    if volumes:
        docker("volume", "rm", *sorted(volumes))
    for secret in stack.secrets:
        docker("secret", "rm", secret, check=False)
    # `stack rm` removes the networks too, but gives up on one a stopping task still holds.
    wait_until(lambda: networks_removed(stack.name), STOP_BOUND_S, what="stack networks removed")


def networks_removed(name: str) -> bool:
    """Remove what is left of the stack's networks; true once none is left (a refusal is the
    error wait_until reports)."""
    left = docker(
        "network", "ls", "--quiet", "--filter", f"label={STACK_LABEL}={name}"
    ).stdout.split()
    if left:
        refused = docker("network", "rm", *left, check=False)
        assert refused.returncode == 0, refused.stderr.strip()
    return not left


@pytest.fixture(scope="module")
def swarm_stack(request: pytest.FixtureRequest, swarm: str, images: Images, run_id: str):
    """stack.yaml deployed under a name of this run's, as docs/swarm.md deploys it: secrets
    created first, the operator's settings exported, POSTGRES_IMAGE derived from compose.yaml.
    Healthy and serving, with the admin user (tests.stack.support.SUPERUSER) created. A module
    may set STACK_ENV to add settings."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    name = f"{run_id}-{slug(module, 30)}"
    port = free_port()
    env = {
        "WEB_IMAGE": images.web,
        "APP_VERSION": "v1",
        "NGINX_IMAGE": images.nginx,
        "NGINX_VERSION": "v1",
        "POSTGRES_IMAGE": documented_postgres_image(),
        "HTTP_PORT": str(port),
        # Where the tests' connections reach nginx's host-mode port from (docker_gwbridge's
        # gateway), named as an operator names their balancer.
        "NGINX_TRUSTED_PROXIES": BRIDGES,
        "DJANGO_SECRET_KEY_SWARM_SECRET": f"{name}_django_secret_key",
        "POSTGRES_PASSWORD_SWARM_SECRET": f"{name}_postgres_password",
        "POSTGRES_APP_PASSWORD_SWARM_SECRET": f"{name}_postgres_app_password",
        **getattr(request.module, "STACK_ENV", {}),
    }
    stack = SwarmStack(name, port, env)
    try:
        for variable in SECRET_SETTINGS:
            value = secrets.token_urlsafe(48)
            docker("secret", "create", env[variable], "-", input=value)
            stack.secrets[env[variable]] = value
        started = time.monotonic()
        deployed = stack.deploy()
        stack.deploy_output = deployed.stdout + deployed.stderr
        assert deployed.returncode == 0, stack.deploy_output
        stack.wait_serving(int(env.get("WEB_REPLICAS", "2")), UP_BOUND_S)
        stack.deploy_seconds = round(time.monotonic() - started, 1)
        stack.create_superuser()
        yield stack
    except Exception as error:
        raise AssertionError(f"{error}\n--- logs ---\n{stack.logs()}") from None
    finally:
        remove_stack(stack)


@pytest.fixture(scope="module")
def front(swarm_stack: SwarmStack, run_id: str) -> Iterator[Balancer]:
    """A load balancer in front of the swarm's published port (tests/harness/balancer.py)."""
    with balancer(run_id, f"{swarm_stack.name}-balancer", [("127.0.0.1", swarm_stack.port)]) as b:
        yield b


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    stack = getattr(item, "funcargs", {}).get("swarm_stack")
    if report.failed and report.when == "call" and isinstance(stack, SwarmStack):
        report.sections.append((f"logs of {stack.describe()}", stack.logs() or "(no output)"))
    return report
