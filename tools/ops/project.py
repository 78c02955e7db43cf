"""The compose project on this VM, as the verbs see it: its folder and .env, the compose files
in use, the commands run in it, the lock that keeps verbs from running at once, and the
containers of each service.

The compose files are chosen one way: COMPOSE_FILE (in .env, or the environment), as compose
itself reads it when no `-f` is given; without it, compose's default (compose.yaml, plus
compose.override.yaml if there is one). Compose records on every container the files it was
created from; a verb that would run the stack from other files than its running containers'
stops and says so (`compose_files_check`), rather than dropping an override (TLS, the
operator's secrets, an external database) without a word.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tools.ops import commands
from tools.ops.console import OpsError
from tools.ops.runner import Runner

# Engine 25: healthcheck start_interval. Compose 2.35: recreating web no longer stops the
# services that depend on it (nginx) unless they ask to (docs/operations.md, Updating).
MIN_ENGINE = (25, 0)
MIN_COMPOSE = (2, 35)
STATE_DIR = ".ops"
ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
DEFAULT_FILES = ("compose.yaml",)
DEFAULT_OVERRIDE = "compose.override.yaml"
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
CONFIG_HASH_LABEL = "com.docker.compose.config-hash"
ONE_OFF_LABEL = "com.docker.compose.oneoff"


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
    os.chmod(partial, path.stat().st_mode & 0o777 if path.exists() else 0o600)
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
    config_files: tuple[str, ...] = ()
    config_hash: str = ""
    # What monitoring reads (tools/ops/metrics.py): Docker's restarts of it, whether its main
    # process was killed for memory, and that process on this machine (0: not running).
    restarts: int = 0
    oom_killed: bool = False
    pid: int = 0

    @property
    def serving(self) -> bool:
        """Running, and healthy when it has a health check."""
        return self.state == "running" and self.health in ("healthy", "none")


class Project:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if not (directory / "compose.yaml").exists():
            raise OpsError(f"no compose.yaml in {directory}; run ./ops from the project's folder")
        self.env_file = directory / ".env"
        self.state_dir = directory / STATE_DIR
        self.runner = Runner(directory)
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
                self.run(commands.config_json(), what="docker compose config").stdout
            )
        return self._config

    def name(self) -> str:
        """The compose project's name: COMPOSE_PROJECT_NAME, else `name:` in compose.yaml."""
        return self.config()["name"]

    def has_service(self, service: str) -> bool:
        """Whether the compose files in use define `service`."""
        return service in self.config()["services"]

    # --- compose files ----------------------------------------------------------------------

    def compose_files(self) -> list[str]:
        """The compose files `docker compose` (no -f) uses here, as absolute paths."""
        chosen = self.setting("COMPOSE_FILE")
        if chosen:
            separator = self.setting("COMPOSE_PATH_SEPARATOR", os.pathsep)
            names = [name for name in chosen.split(separator) if name]
        else:
            names = list(DEFAULT_FILES)
            if (self.directory / DEFAULT_OVERRIDE).exists():
                names.append(DEFAULT_OVERRIDE)
        return [str((self.directory / name).resolve()) for name in names]

    def compose_files_check(self, dropping: Iterable[str] = ()) -> list[str]:
        """Refuse when a running container was created from a compose file that this verb
        would not use (unless that file is in `dropping`, named on purpose); return the files
        this verb adds to the running stack's (an override being switched on)."""
        using = self.compose_files()
        created_from: set[str] = set()
        for container in self.all_containers():
            created_from.update(container.config_files)
        dropped = sorted(created_from - set(using))
        named = {str((self.directory / name).resolve()) for name in dropping}
        unexpected = [path for path in dropped if path not in named]
        if unexpected:
            files = ", ".join(self.relative(path) for path in unexpected)
            wanted = ":".join(self.relative(p) for p in sorted(created_from | set(using),
                                                              key=_file_order(using)))  # fmt: skip
            raise OpsError(
                f"the running containers were created with {files}, which COMPOSE_FILE "
                f"({self.relative_list(using)}) does not name: put COMPOSE_FILE={wanted} in "
                f"{self.env_file}, or, to stop using it, add --without {files.split(', ')[0]}"
            )
        return [path for path in using if created_from and path not in created_from]

    def relative(self, path: str) -> str:
        try:
            return str(Path(path).relative_to(self.directory))
        except ValueError:
            return path

    def relative_list(self, paths: list[str]) -> str:
        return ":".join(self.relative(path) for path in paths)

    # --- commands ---------------------------------------------------------------------------

    def run(self, command: list[str], **kwargs):
        return self.runner.run(command, **kwargs)

    def stream(self, command: list[str], **kwargs) -> Iterator[bytes]:
        return self.runner.stream(command, **kwargs)

    def output(self, command: list[str], **kwargs) -> bytes:
        return self.runner.output(command, **kwargs)

    def check_versions(self) -> tuple[str, str]:
        """(engine, compose) versions, or OpsError naming the minimum."""
        engine = self.run(commands.engine_version(), what="asking the Docker engine").stdout
        engine = engine.strip()
        if parse_version(engine) < MIN_ENGINE:
            raise OpsError(f"Docker Engine {engine} is too old; ops needs {_dotted(MIN_ENGINE)}+")
        result = self.run(commands.compose_version(), check=False)
        compose = result.stdout.strip()
        if result.returncode != 0 or not compose:
            raise OpsError(
                f"docker compose is missing; ops needs the Docker Compose plugin "
                f"{_dotted(MIN_COMPOSE)}+"
            )
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

    def containers(self, service: str) -> list[Container]:
        """The service's containers, running or not, oldest number first."""
        ids = self.run(commands.service_containers(service)).stdout.split()
        return self.inspect(ids, service)

    def all_containers(self) -> list[Container]:
        """Every container of the project's services, one-off ones aside."""
        ids = self.run(commands.project_containers(self.name())).stdout.split()
        return [c for c in self.inspect(ids) if c.service]

    def inspect(self, ids: list[str], service: str | None = None) -> list[Container]:
        if not ids:
            return []
        found = []
        for item in json.loads(self.run(commands.inspect(*ids)).stdout):
            labels = item["Config"].get("Labels") or {}
            if labels.get(ONE_OFF_LABEL) == "True":
                continue
            state = item["State"]
            files = labels.get(CONFIG_FILES_LABEL, "")
            found.append(
                Container(
                    id=item["Id"][:12],
                    name=item["Name"].lstrip("/"),
                    service=service or labels.get("com.docker.compose.service", ""),
                    version=labels.get("org.opencontainers.image.version", "?"),
                    state=state["Status"],
                    health=(state.get("Health") or {}).get("Status", "none"),
                    image_id=item["Image"],
                    config_files=tuple(f for f in files.split(",") if f),
                    config_hash=labels.get(CONFIG_HASH_LABEL, ""),
                    restarts=item.get("RestartCount", 0),
                    oom_killed=bool(state.get("OOMKilled")),
                    pid=state.get("Pid") or 0,
                )
            )
        return sorted(found, key=_container_number)

    def config_hash(self, service: str, env: Mapping[str, str]) -> str:
        """What compose would label a new container of `service` with, given `env`."""
        printed = self.run(commands.config_hash(service), env=env, what="docker compose config")
        return printed.stdout.split()[-1]

    def active_release(self) -> str | None:
        """The release nginx serves (the site volume's `current`), when nginx runs."""
        result = self.run(
            commands.in_service("nginx", "readlink", "/srv/site/current"), check=False, timeout=30
        )
        link = result.stdout.strip()
        return link.rsplit("/", 1)[-1] if result.returncode == 0 and link else None

    def logs(self, container: Container, lines: int = 20) -> str:
        result = self.run(commands.logs(container.id, tail=lines), check=False)
        return (result.stdout + result.stderr).strip()


def _container_number(container: Container) -> tuple[str, int]:
    number = container.name.rsplit("-", 1)[-1]
    return container.service, int(number) if number.isdigit() else 0


def _file_order(using: list[str]):
    """Sort key: the files in use in their order, others after them."""
    return lambda path: (using.index(path) if path in using else len(using), path)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))
