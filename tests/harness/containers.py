"""Plain containers and networks for tests, labelled with the run id and always removed."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Mapping, Sequence

from tests.harness.docker import RUN_LABEL, DockerError, clean_env, docker

POLL_INTERVAL_S = 0.2


def slug(text: str, length: int = 40) -> str:
    """A name fragment docker and compose accept: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length].strip("-") or "x"


def _env_args(env: Mapping[str, str] | None) -> list[str]:
    return [arg for name, value in (env or {}).items() for arg in ("--env", f"{name}={value}")]


class Container:
    def __init__(self, name: str, image: str) -> None:
        self.name = name
        self.image = image

    def describe(self) -> str:
        return f"container {self.name} ({self.image})"

    def logs(self) -> str:
        """stdout and stderr interleaved as the container wrote them."""
        result = subprocess.run(
            ["docker", "logs", self.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=clean_env(),
            timeout=60,
            check=False,
        )
        return result.stdout

    def exec(
        self,
        *command: str,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        args = ["exec", *_env_args(env)]
        if user is not None:
            args += ["--user", user]
        return docker(*args, self.name, *command, check=check, timeout=timeout)

    def inspect(self) -> dict:
        return json.loads(docker("container", "inspect", self.name).stdout)[0]

    def status(self) -> str:
        return self.inspect()["State"]["Status"]

    def wait_for_log(self, pattern: str, timeout: float = 60) -> str:
        """Poll the logs until `pattern` (a regular expression) appears; return the logs."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.MULTILINE)
        while True:
            logs = self.logs()
            if regex.search(logs):
                return logs
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.describe()}: no log line matching {pattern!r} within {timeout}s; "
                    f"status {self.status()}; logs:\n{logs}"
                )
            if self.status() in ("exited", "dead"):
                raise AssertionError(
                    f"{self.describe()} exited before logging {pattern!r}; logs:\n{logs}"
                )
            time.sleep(POLL_INTERVAL_S)

    def wait_exit(self, timeout: float = 60) -> int:
        return int(docker("wait", self.name, timeout=timeout).stdout.strip())

    def stop(self, timeout_s: int = 10) -> None:
        docker("stop", "--time", str(timeout_s), self.name, timeout=timeout_s + 30)

    def ip_address(self, network: str) -> str:
        return self.inspect()["NetworkSettings"]["Networks"][network]["IPAddress"]


class Containers:
    """Starts containers and networks for one test and removes them (and their anonymous
    volumes) when the test ends, whatever the outcome."""

    def __init__(self, run_id: str, owner: str) -> None:
        self.run_id = run_id
        self.prefix = f"{run_id}-{slug(owner, 30)}"
        self.started: list[Container] = []
        self.one_off: list[str] = []  # run_once containers: their output is the result
        self.networks: list[str] = []

    def _name(self) -> str:
        count = len(self.started) + len(self.one_off) + len(self.networks)
        return f"{self.prefix}-{count + 1}"

    def _labels(self) -> list[str]:
        return ["--label", f"{RUN_LABEL}={self.run_id}"]

    def run(
        self,
        image: str,
        *command: str,
        env: Mapping[str, str] | None = None,
        options: Sequence[str] = (),
    ) -> Container:
        """Start a detached container; `options` are extra `docker run` flags."""
        container = Container(self._name(), image)
        self.started.append(container)
        docker(
            "run", "--detach", "--name", container.name, *self._labels(), *_env_args(env),
            *options, image, *command,
        )  # fmt: skip
        return container

    def run_once(
        self,
        image: str,
        *command: str,
        env: Mapping[str, str] | None = None,
        options: Sequence[str] = (),
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run a container to completion (removed afterwards); the caller checks the result."""
        name = self._name()
        self.one_off.append(name)
        return docker(
            "run", "--rm", "--name", name, *self._labels(), *_env_args(env), *options, image,
            *command, check=False, timeout=timeout,
        )  # fmt: skip

    def network(self) -> str:
        name = self._name()
        docker("network", "create", *self._labels(), name)
        self.networks.append(name)
        return name

    def remove_all(self) -> list[str]:
        """Remove everything started; return the problems (empty when all went)."""
        problems = []
        for name in [c.name for c in reversed(self.started)] + self.one_off:
            result = docker("rm", "--force", "--volumes", name, check=False)
            if result.returncode != 0 and "No such container" not in result.stderr:
                problems.append(f"{name}: {result.stderr.strip()}")
        for network in self.networks:
            try:
                docker("network", "rm", network)
            except DockerError as error:
                problems.append(str(error))
        return problems
