"""The ops layer: ./ops verbs against the real engine, in a copy of the project as an operator
has it on the VM (the product's files and a .env), under load.

Each module gets one project (`ops_project`): its tests are the scenes of one stack's life,
in order (deploy, roll back, a failed deploy...), because each verb starts from the state the
previous one left. Everything is removed afterwards: the stack, its volumes and its images,
which carry this run's id in their names.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.harness import REPO
from tests.harness.balancer import BRIDGES, Balancer, balancer
from tests.harness.containers import slug
from tests.harness.docker import clean_env, docker
from tests.harness.ports import free_port
from tests.ops.traffic import Site
from tests.stack.support import SUPERUSER

OPS_TIMEOUT_S = 600
# Not the product's: the test runner's own files, which an operator's copy does not have.
NOT_SHIPPED = ("tests/", "docs/")


@dataclass
class OpsProject:
    directory: Path
    name: str
    port: int
    images: tuple[str, str]
    durations: dict[str, float] = field(default_factory=dict)

    @property
    def site(self) -> Site:
        return Site(self.port)

    @property
    def archives(self) -> Path:
        """OPS_BACKUP_DIR: beside the project folder, in the test's own temporary folder (the
        default is a system path shared by every project of a VM)."""
        return self.directory.parent / "archives"

    def ops(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`./ops ARGS` in the project folder; its duration is kept under the verb's name."""
        started = time.monotonic()
        result = subprocess.run(
            ["./ops", *args], cwd=self.directory, env=clean_env(), capture_output=True,
            text=True, timeout=OPS_TIMEOUT_S, check=False,
        )  # fmt: skip
        self.durations[" ".join(args)] = round(time.monotonic() - started, 1)
        if check and result.returncode != 0:
            raise AssertionError(f"./ops {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")  # fmt: skip
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["./ops", *args], cwd=self.directory, env=clean_env(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "compose", *args], cwd=self.directory, env=clean_env(),
            capture_output=True, text=True, timeout=OPS_TIMEOUT_S, check=check,
        )  # fmt: skip

    def edit(self, relative: str, old: str, new: str) -> None:
        """Change the checkout, as a `git pull` of a new version does."""
        path = self.directory / relative
        text = path.read_text()
        assert old in text, f"{relative} has no {old!r}"
        path.write_text(text.replace(old, new, 1))

    def write(self, relative: str, text: str) -> None:
        path = self.directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def setting(self, name: str) -> str | None:
        for line in (self.directory / ".env").read_text().splitlines():
            if line.startswith(f"{name}="):
                return line.split("=", 1)[1]
        return None

    def site_answers(self, path: str) -> bool:
        answer = requests.get(self.site.url(path), headers={"Host": "localhost",
                              "X-Forwarded-Proto": "https"}, timeout=15)  # fmt: skip
        return answer.status_code == 200

    def container_ids(self, service: str) -> list[str]:
        return self.compose("ps", "--quiet", service).stdout.split()

    def create_superuser(self) -> None:
        self.compose(
            "run", "--rm", "-T", "--env", f"DJANGO_SUPERUSER_PASSWORD={SUPERUSER[1]}", "web",
            "python", "manage.py", "createsuperuser", "--noinput", "--username", SUPERUSER[0],
            "--email", "ops@example.com",
        )  # fmt: skip

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--timestamps", check=False).stdout


def copy_of_the_project(target: Path) -> None:
    """The product's files (tracked or new, not ignored), without the test suite."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for relative in listed:
        source = REPO / relative
        if not relative or relative.startswith(NOT_SHIPPED) or not source.is_file():
            continue
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(source.read_bytes())
        destination.chmod(source.stat().st_mode & 0o777)


# What the test environment adds to an operator's .env: a project and image names of this run's
# own (so nothing of another run or of the VM is touched), the published port on loopback, and
# the balancer's addresses as `./ops init --balancer` writes them (where the tests stand).
# One address (this host) plays many visitors behind the load balancer: the per-client limits
# are lifted, as in tests/stack/test_recreate.py.
LOAD_LIMITS = {"NGINX_RATE_LIMIT": "100000", "NGINX_RATE_BURST": "100000",
               "NGINX_CONN_LIMIT": "1000"}  # fmt: skip


@contextmanager
def project_copy(
    name: str, parent: Path, env: dict[str, str] | None = None
) -> Iterator[OpsProject]:
    """A copy of the product in `parent`/catcollector, as an operator has it on the VM, with a
    .env of the test environment's lines and `env`'s; taken down with its volumes and images."""
    directory = parent / "catcollector"
    copy_of_the_project(directory)
    port = free_port()
    images = (f"{name}/web", f"{name}/nginx")
    lines = {
        "COMPOSE_PROJECT_NAME": name, "HTTP_BIND": "127.0.0.1", "HTTP_PORT": str(port),
        "WEB_IMAGE": images[0], "NGINX_IMAGE": images[1],
        "OPS_BACKUP_DIR": str(parent / "archives"), "NGINX_TRUSTED_PROXIES": BRIDGES,
        **(env or {}),
    }  # fmt: skip
    (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    project = OpsProject(directory, name, port, images)
    try:
        yield project
    finally:
        project.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)
        for repository in images:
            tags = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repository)
            for image in tags.stdout.split():
                docker("image", "rm", "--force", image, check=False)


@pytest.fixture(scope="module")
def ops_project(
    request: pytest.FixtureRequest, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpsProject]:
    module = request.module.__name__.rsplit(".", 1)[-1]
    with project_copy(
        f"{run_id}-{slug(module, 30)}", tmp_path_factory.mktemp("ops"),
        {"DJANGO_ALLOWED_HOSTS": "localhost", **LOAD_LIMITS},
    ) as project:  # fmt: skip
        yield project


@pytest.fixture(scope="module")
def front(ops_project: OpsProject, run_id: str) -> Iterator[Balancer]:
    """The module's load balancer in front of the project's VM port (tests/harness/balancer.py);
    it starts before the stack may exist, and `wait_up(1)` says when it sends traffic."""
    with balancer(run_id, f"{ops_project.name}-balancer", [("127.0.0.1", ops_project.port)],
                  healthy=0) as running:  # fmt: skip
        yield running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    project = getattr(item, "funcargs", {}).get("ops_project")
    if report.failed and report.when == "call" and project is not None:
        report.sections.append((f"logs of {project.name}", project.logs() or "(no output)"))
    return report
