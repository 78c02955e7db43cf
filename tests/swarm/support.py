"""stack.yaml on a swarm, driven as docs/swarm.md drives it, for the swarm layer.

The engine becomes a single-node swarm for the layer (conftest.py). Its port is published in
host mode, which listens on every address of the host: the tests connect to 127.0.0.1 only,
and, as in the stack layer, stand where the load balancer stands (a private peer that sends
`X-Forwarded-Proto: https`; tests.stack.support.Client).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from dataclasses import dataclass, field

import requests

from tests.harness import REPO
from tests.harness.docker import DockerError, clean_env, docker
from tests.harness.polling import wait_until
from tests.stack.support import SITE_HOST, SUPERUSER, Client

STACK_FILE = "stack.yaml"
SWARM_DOC = REPO / "docs" / "swarm.md"
DEPLOY_TIMEOUT_S = 180
UPDATE_TIMEOUT_S = 300
# docker stack deploy warns about keys it ignores, and says nothing about some it drops.
IGNORED_WARNINGS = ("Ignoring unsupported options", "Ignoring deprecated options")
SERVICE_LABEL = "com.docker.swarm.service.name"
STACK_LABEL = "com.docker.stack.namespace"
CSS_LINK = re.compile(r'href="(/static/cats/style\.[0-9a-f]{12}\.css)"')


def documented_postgres_image() -> str:
    """POSTGRES_IMAGE as docs/swarm.md derives it from postgres/Dockerfile: its `export` line,
    run."""
    [line] = [
        line.strip()
        for line in SWARM_DOC.read_text().splitlines()
        if line.strip().startswith("export POSTGRES_IMAGE=")
    ]
    result = subprocess.run(
        ["sh", "-c", f'{line} && printf %s "$POSTGRES_IMAGE"'],
        cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout


@dataclass
class SwarmStack:
    """A deployed stack: its name, the port nginx listens on, the environment it was deployed
    with (the operator's exported .env) and the secret values it was given."""

    name: str
    port: int
    env: dict[str, str]
    secrets: dict[str, str] = field(default_factory=dict)
    deploy_output: str = ""
    deploy_seconds: float = 0.0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def client(self, **kwargs) -> Client:
        return Client(self, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return Client(self).get(path, **kwargs)

    def service(self, short: str) -> str:
        return f"{self.name}_{short}"

    def cli(self, *args: str, timeout: float = DEPLOY_TIMEOUT_S) -> subprocess.CompletedProcess:
        """`docker ARGS` with the stack's environment (stack deploy interpolates from it)."""
        return subprocess.run(
            ["docker", *args], cwd=REPO, env=clean_env(self.env), capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def deploy(self, *files: str) -> subprocess.CompletedProcess:
        # Images live on this node only: no registry to ask for a digest.
        args = ["stack", "deploy", "--detach=false", "--resolve-image", "never"]
        for file in files or (STACK_FILE,):
            args += ["--compose-file", file]
        return self.cli(*args, self.name)

    def update(self, short: str, *args: str) -> subprocess.CompletedProcess:
        """`docker service update` as an operator runs it: waits for the outcome."""
        return self.cli(
            "service", "update", "--detach=false", "--no-resolve-image", *args,
            self.service(short), timeout=UPDATE_TIMEOUT_S,
        )  # fmt: skip

    def inspect(self, short: str) -> dict:
        return json.loads(docker("service", "inspect", self.service(short)).stdout)[0]

    def image(self, short: str) -> str:
        return self.inspect(short)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]

    def containers(self, short: str, *, all_states: bool = False) -> list[str]:
        """The service's task containers on this node (running ones, unless all_states)."""
        args = [
            "ps",
            "--quiet",
            "--no-trunc",
            "--filter",
            f"label={SERVICE_LABEL}={self.service(short)}",
        ]
        return docker(*args, *(["--all"] if all_states else [])).stdout.split()

    def container_inspect(self, container: str) -> dict:
        return json.loads(docker("container", "inspect", container).stdout)[0]

    def healthy(self, short: str) -> list[str]:
        """Running task containers whose health check passed."""
        found = []
        for container in self.containers(short):
            state = self.container_inspect(container)["State"]
            if state.get("Health", {}).get("Status") == "healthy":
                found.append(container)
        return found

    def exec(self, short: str, *command: str, env: dict[str, str] | None = None) -> str:
        container = self.containers(short)[0]
        args = [arg for name, value in (env or {}).items() for arg in ("--env", f"{name}={value}")]
        return docker("exec", *args, container, *command).stdout

    def task_lines(self, short: str) -> list[tuple[str, str]]:
        """(task, line) for everything the service's tasks wrote, running or not: the task is
        `stack_service.slot.id`, as `docker service logs` names it."""
        result = docker("service", "logs", "--no-trunc", self.service(short), timeout=60)
        lines = []
        for line in (result.stdout + result.stderr).splitlines():
            prefix, separator, text = line.partition("| ")
            if separator:
                lines.append((prefix.split("@", 1)[0].strip(), text))
        return lines

    def json_lines(self, short: str) -> list[tuple[str, dict]]:
        records = []
        for task, text in self.task_lines(short):
            if text.startswith("{"):
                try:
                    records.append((task, json.loads(text)))
                except json.JSONDecodeError:
                    continue
        return records

    def served_by(self, request_ids: set[str]) -> Counter[str]:
        """How many of these requests each web task logged (its gunicorn access line)."""
        return Counter(
            task
            for task, record in self.json_lines("web")
            if record.get("request_id") in request_ids
        )

    def stylesheet(self) -> str:
        """The hashed CSS the home page links to: which release rendered it."""
        return CSS_LINK.search(self.get("/").text).group(1)

    def create_superuser(self) -> None:
        """In a running web task, the way docs/swarm.md says."""
        self.exec(
            "web", "python", "manage.py", "createsuperuser", "--noinput", "--username",
            SUPERUSER[0], "--email", f"{SUPERUSER[0]}@example.com",
            env={"DJANGO_SUPERUSER_PASSWORD": SUPERUSER[1]},
        )  # fmt: skip

    def wait_serving(self, replicas: int, timeout: float) -> None:
        """`replicas` healthy web tasks, and nginx serving the app from them."""

        def ready() -> bool:
            if len(self.healthy("web")) != replicas:
                return False
            response = self.get("/readyz", headers={"Host": SITE_HOST})
            return response.status_code == 200

        wait_until(ready, timeout, what=f"{replicas} healthy web tasks behind nginx")

    def describe(self) -> str:
        return f"stack {self.name}"

    def logs(self) -> str:
        """Every service's log, for a failing test's report."""
        parts = []
        for short in ("db", "publish", "web", "nginx"):
            # A task on a node that is going away can keep `service logs` open: bounded.
            try:
                result = docker(
                    "service", "logs", "--timestamps", "--tail", "150", self.service(short),
                    timeout=30,
                )  # fmt: skip
            except (DockerError, subprocess.TimeoutExpired) as error:
                parts.append(f"--- {short}: {error}")
                continue
            parts.append(f"--- {short} (last 150 lines)\n" + result.stdout + result.stderr)
        tasks = docker("stack", "ps", "--no-trunc", self.name, check=False)
        parts.append("--- docker stack ps\n" + tasks.stdout + tasks.stderr)
        return "\n".join(parts)
