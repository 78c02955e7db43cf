"""A compose project per test: its own name, configured the way ops configure it, always
taken down with its volumes."""

from __future__ import annotations

import datetime
import json
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.harness.docker import clean_env, docker

UP_TIMEOUT_S = 180
DOWN_TIMEOUT_S = 120
# An idle container stops within this after its stop signal (the slowest here: PostgreSQL's
# shutdown checkpoint, about a second).
PROMPT_STOP_S = 10


class ComposeError(RuntimeError):
    """A compose command failed; the message holds the command and its stderr."""


class ComposeProject:
    """`docker compose -p NAME -f FILE... --env-file ...` for one test.

    Variables reach compose only through env files (an ops person's `.env`), never by editing
    the compose file: `env_files` are read in order, then `env` (written to a file of its own)
    overrides them. The caller's shell environment does not leak in.
    """

    def __init__(
        self,
        name: str,
        files: Sequence[Path | str],
        env_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        env_files: Sequence[Path | str] = (),
        project_directory: Path | str | None = None,
        cwd: Path | str | None = None,
    ) -> None:
        self.name = name
        self.files = [str(f) for f in files]
        self.cwd = Path(cwd) if cwd else Path.cwd()
        self.env_files = [str(f) for f in env_files]
        if env:
            overrides = env_dir / f"{name}.env"
            overrides.write_text("".join(f"{k}={_quote(v)}\n" for k, v in env.items()))
            self.env_files.append(str(overrides))
        self.project_directory = str(project_directory) if project_directory else None
        self.up_called = False

    def describe(self) -> str:
        return f"compose project {self.name}"

    def base_command(self) -> list[str]:
        command = ["docker", "compose", "--project-name", self.name]
        for file in self.files:
            command += ["--file", file]
        for env_file in self.env_files:
            command += ["--env-file", env_file]
        if self.project_directory:
            command += ["--project-directory", self.project_directory]
        return command

    def compose(
        self, *args: str, check: bool = True, timeout: float = 300, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker compose ARGS` for this project, capturing text output."""
        result = subprocess.run(
            [*self.base_command(), *args],
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=clean_env(),
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and result.returncode != 0:
            raise ComposeError(
                f"docker compose {' '.join(args)} ({self.name}) exited {result.returncode}:\n"
                f"{result.stderr.strip()}"
            )
        return result

    def up(
        self, *services: str, wait: bool = True, timeout: int = UP_TIMEOUT_S, build: bool = False
    ) -> None:
        """`up --detach`, by default with `--wait`: returns once every service is running and
        healthy (where it has a healthcheck), or raises."""
        self.up_called = True
        args = ["up", "--detach"]
        if wait:
            args += ["--wait", "--wait-timeout", str(timeout)]
        if build:
            args.append("--build")
        self.compose(*args, *services, timeout=timeout + 600 if build else timeout + 60)

    def down(self) -> None:
        """Remove containers, networks, volumes (named ones too) and images compose built."""
        self.compose(
            "down", "--volumes", "--remove-orphans", "--rmi", "local", "--timeout", "10",
            timeout=DOWN_TIMEOUT_S,
        )  # fmt: skip

    def exec(
        self, service: str, *command: str, user: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        args = ["exec", "-T"]
        if user is not None:
            args += ["--user", user]
        return self.compose(*args, service, *command, check=check)

    def run(
        self,
        service: str,
        *command: str,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """A one-off container of `service` (removed afterwards), `env` set in it only."""
        env_args = [arg for k, v in (env or {}).items() for arg in ("--env", f"{k}={v}")]
        return self.compose(
            "run", "--rm", "-T", *env_args, service, *command, check=check, timeout=timeout
        )

    def logs(self, *services: str) -> str:
        return self.compose("logs", "--no-color", "--timestamps", *services, check=False).stdout

    def port(self, service: str, container_port: int, protocol: str = "tcp") -> int:
        """The host port `service`'s `container_port` is published on."""
        out = self.compose("port", "--protocol", protocol, service, str(container_port)).stdout
        return int(out.strip().rsplit(":", 1)[1])

    def ps(self) -> list[dict]:
        out = self.compose("ps", "--all", "--format", "json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def stop_reporting_slow(self) -> dict[str, float]:
        """`stop` an idle stack; {service: seconds} for each running container that took
        longer than PROMPT_STOP_S to stop. With nothing in flight, each should stop at once on
        its stop signal; one that ignores it or acts on it only later holds every `down`,
        restart and reboot for up to its stop_grace_period."""
        running = {c["Name"] for c in self.ps() if c["State"] == "running"}
        stopping = time.time()
        self.compose("stop", timeout=DOWN_TIMEOUT_S)
        slow = {}
        for container in self.ps():
            if container["Name"] not in running:
                continue
            finished = docker("inspect", "--format", "{{.State.FinishedAt}}", container["ID"])
            seconds = _epoch(finished.stdout.strip()) - stopping
            if seconds > PROMPT_STOP_S:
                slow[container["Service"]] = round(seconds, 1)
        return slow

    def container_id(self, service: str) -> str:
        return self.compose("ps", "--all", "--quiet", service).stdout.strip()


def _epoch(timestamp: str) -> float:
    """Docker's RFC 3339 time with nanoseconds ("2026-12-06T05:40:01.123456789Z") as Unix time."""
    whole, _, fraction = timestamp.rstrip("Z").partition(".")
    moment = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
    return moment.timestamp() + float(f"0.{fraction or 0}")


def _quote(value: str) -> str:
    """Env-file value quoting compose reads back verbatim (single quotes: no interpolation)."""
    if "'" in value or "\n" in value:
        raise ValueError(f"env value {value!r}: single quotes and newlines are not supported")
    return f"'{value}'"
