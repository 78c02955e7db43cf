"""The compose project on this VM, as the verbs see it: its directory and .env, the docker and
compose commands run in it, the lock that keeps verbs from running at once, and the containers
of each service.

Every compose command runs in the project directory, so compose reads the operator's .env
there (COMPOSE_FILE, COMPOSE_PROJECT_NAME and every setting) exactly as a hand-typed
`docker compose` would; a verb only overrides the version variables it is switching.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tools.ops.console import OpsError

# Engine 25: healthcheck start_interval. Compose 2.35: recreating web no longer stops the
# services that depend on it (nginx) unless they ask to (docs/operations.md, Updating).
MIN_ENGINE = (25, 0)
MIN_COMPOSE = (2, 35)
COMMAND_TIMEOUT_S = 900
STATE_DIR = ".ops"
ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_version(text: str) -> tuple[int, ...]:
    """(2, 40, 3) from '2.40.3-3', 'v2.40.3' or '26.1.5+dfsg1'."""
    numbers = re.match(r"v?(\d+(?:\.\d+)*)", text.strip())
    if not numbers:
        raise ValueError(text)
    return tuple(int(part) for part in numbers.group(1).split("."))


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as compose reads them (comments and blank lines skipped, one level of
    matching quotes removed)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = ENV_LINE.match(line)
        if match:
            value = match.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[match.group(1)] = value
    return values


def write_env_values(path: Path, updates: Mapping[str, str]) -> None:
    """Set KEY=VALUE lines in the .env file, keeping every other line as it is; written to a
    temporary file and renamed, so a crash never leaves half a .env."""
    lines = path.read_text().splitlines() if path.exists() else []
    pending = dict(updates)
    for index, line in enumerate(lines):
        match = ENV_LINE.match(line)
        if match and not line.lstrip().startswith("#") and match.group(1) in pending:
            lines[index] = f"{match.group(1)}={pending.pop(match.group(1))}"
    lines += [f"{key}={value}" for key, value in pending.items()]
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=".env.")
    with os.fdopen(handle, "w") as out:
        out.write("\n".join(lines) + "\n")
    if path.exists():
        os.chmod(partial, path.stat().st_mode & 0o777)
    os.replace(partial, path)


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    service: str
    version: str
    state: str
    health: str
    image_id: str


class Project:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if not (directory / "compose.yaml").exists():
            raise OpsError(f"no compose.yaml in {directory}; run ./ops from the project's folder")
        self.env_file = directory / ".env"
        self.state_dir = directory / STATE_DIR
        self._config: dict | None = None

    # --- settings ---------------------------------------------------------------------------

    def setting(self, name: str, default: str = "") -> str:
        """A variable as compose sees it: the environment first, then .env."""
        return os.environ.get(name) or read_env_file(self.env_file).get(name) or default

    def set_settings(self, updates: Mapping[str, str]) -> None:
        write_env_values(self.env_file, updates)

    def config(self) -> dict:
        """compose's view of the project (`docker compose config`), read once."""
        if self._config is None:
            self._config = json.loads(
                self.compose("config", "--format", "json", what="docker compose config").stdout
            )
        return self._config

    def name(self) -> str:
        """The compose project's name: COMPOSE_PROJECT_NAME, else `name:` in compose.yaml."""
        return self.config()["name"]

    # --- commands ---------------------------------------------------------------------------

    def run(
        self,
        command: list[str],
        *,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT_S,
        what: str = "",
    ) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(
                command,
                cwd=self.directory,
                env={**os.environ, **(env or {})},
                # Never the operator's: `compose run` would forward it to the container, and
                # the prompt of `./ops restore` reads it.
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError:
            raise OpsError(f"{command[0]} is not installed (this VM needs Docker)") from None
        except subprocess.TimeoutExpired:
            raise OpsError(
                f"{what or ' '.join(command[:3])} did not finish in {timeout} s"
            ) from None
        if check and result.returncode != 0:
            message = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise OpsError(
                f"{what or ' '.join(command[:3])} failed (exit {result.returncode})",
                "\n".join(message[-15:]),
            )
        return result

    def compose(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return self.run(["docker", "compose", *args], **kwargs)

    def docker(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return self.run(["docker", *args], **kwargs)

    def check_versions(self) -> tuple[str, str]:
        """(engine, compose) versions, or OpsError naming the minimum."""
        engine = self.docker(
            "version", "--format", "{{.Server.Version}}", what="asking the Docker engine"
        ).stdout.strip()
        if parse_version(engine) < MIN_ENGINE:
            raise OpsError(f"Docker Engine {engine} is too old; ops needs {_dotted(MIN_ENGINE)}+")
        result = self.compose("version", "--short", check=False)
        compose = result.stdout.strip()
        if result.returncode != 0 or not compose:
            raise OpsError(f"docker compose is missing; ops needs compose {_dotted(MIN_COMPOSE)}+")
        if parse_version(compose) < MIN_COMPOSE:
            raise OpsError(
                f"docker compose {compose} is too old; ops needs {_dotted(MIN_COMPOSE)}+ "
                "(the Docker Compose plugin)"
            )
        return engine, compose

    @contextmanager
    def lock(self, verb: str) -> Iterator[None]:
        """One verb at a time per project: a second one is refused, saying who holds it."""
        self.state_dir.mkdir(exist_ok=True)
        path = self.state_dir / "lock"
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another verb"
                message = f"{holder} is running in this project; try again when it ends"
                raise OpsError(message) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"./ops {verb} (pid {os.getpid()})")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()

    # --- containers -------------------------------------------------------------------------

    def has_service(self, service: str) -> bool:
        """Whether the compose files in use (COMPOSE_FILE in .env) define `service`."""
        names = self.compose("config", "--services", what="reading the compose files").stdout
        return service in names.split()

    def containers(self, service: str) -> list[Container]:
        """The service's containers, running or not, oldest number first."""
        ids = self.compose("ps", "--all", "--quiet", service).stdout.split()
        if not ids:
            return []
        inspected = json.loads(self.docker("container", "inspect", *ids).stdout)
        found = []
        for item in inspected:
            labels = item["Config"].get("Labels") or {}
            state = item["State"]
            found.append(
                Container(
                    id=item["Id"][:12],
                    name=item["Name"].lstrip("/"),
                    service=service,
                    version=labels.get("org.opencontainers.image.version", "?"),
                    state=state["Status"],
                    health=(state.get("Health") or {}).get("Status", "none"),
                    image_id=item["Image"],
                )
            )
        return sorted(
            found, key=lambda c: int(c.name.rsplit("-", 1)[-1]) if c.name[-1].isdigit() else 0
        )

    def active_release(self) -> str | None:
        """The release nginx serves (the site volume's `current`), when nginx runs."""
        result = self.compose(
            "exec", "-T", "nginx", "readlink", "/srv/site/current", check=False, timeout=30
        )
        link = result.stdout.strip()
        return link.rsplit("/", 1)[-1] if result.returncode == 0 and link else None

    def logs(self, container: Container, lines: int = 20) -> str:
        result = self.docker("logs", "--tail", str(lines), container.id, check=False)
        return (result.stdout + result.stderr).strip()


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))
