"""A throwaway PostgreSQL for the unit layer and the benchmarks: the host's server binaries
when present (Debian's `postgresql` package), otherwise a container of the postgres image
compose.yaml runs.

Either way it listens on a free loopback port with password authentication (like the stack's
database), with durability switched off (a throwaway cluster gains nothing from it).
`start_cluster()` picks the kind; both have `environ`, `password`, `port`, `psql()`, `stop()`.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.harness import REPO
from tests.harness.base_images import postgres_image
from tests.harness.docker import RUN_LABEL, docker, engine_problem, run_id
from tests.harness.ports import free_port

BINARY_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "cats"
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
CONTAINER_READY_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    pass


def host_binaries() -> Path | None:
    """The newest PostgreSQL server binaries on this host, or None."""
    candidates = sorted(
        (Path(p) for p in glob.glob(BINARY_GLOB) if (Path(p) / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def start_cluster(settings: dict[str, str] | None = None) -> HostCluster | ContainerCluster:
    """The host's binaries when present, else a container; raises PostgresUnavailable with
    what to install when neither can run."""
    binaries = host_binaries()
    if binaries is not None:
        return HostCluster(binaries, settings).start()
    problem = engine_problem()
    if problem is not None:
        raise PostgresUnavailable(
            f"no PostgreSQL server binaries in {BINARY_GLOB} and no Docker engine ({problem}); "
            "install Debian's postgresql package or start Docker"
        )
    return ContainerCluster(settings).start()


class Cluster:
    """What both kinds share: the password, the port and how to reach them."""

    password: str
    port: int

    @property
    def environ(self) -> dict[str, str]:
        """The variables config.settings reads to reach this cluster."""
        return {
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": SUPERUSER,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_DB": "postgres",
        }

    def _connect_args(self, database: str = "postgres") -> dict[str, object]:
        return {
            "host": "127.0.0.1", "port": self.port, "user": SUPERUSER,
            "password": self.password, "dbname": database,
        }  # fmt: skip

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` (autocommit, like psql) and return the rows as psql -tA prints them."""
        with psycopg.connect(**self._connect_args(database), autocommit=True) as connection:
            cursor = connection.execute(sql)
            rows = cursor.fetchall() if cursor.description else []
        return "\n".join("|".join(str(value) for value in row) for row in rows)


class HostCluster(Cluster):
    """initdb and pg_ctl from the host; run as the `postgres` user when started as root,
    since PostgreSQL refuses root."""

    def __init__(self, binaries: Path, settings: dict[str, str] | None = None) -> None:
        self.bin = binaries
        self.settings = settings or {}
        self.password = secrets.token_urlsafe(24)
        self.root = Path(tempfile.mkdtemp(prefix="cats-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self.port = 0
        self._owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    def _run(self, *command: str | Path) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if self._owner else []
        return subprocess.run(
            [*prefix, *map(str, command)],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
        )

    def start(self) -> HostCluster:
        self.sockets.mkdir()
        password_file = self.root / "password"
        password_file.write_text(self.password)
        if self._owner:
            for path in (self.root, self.sockets, password_file):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        initdb = self._run(
            self.bin / "initdb",
            "--pgdata",
            self.data,
            "--username",
            SUPERUSER,
            "--pwfile",
            password_file,
            "--auth",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-sync",
        )
        password_file.unlink()
        if initdb.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {initdb.stderr.strip()}")
        options = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.sockets),
            **FAST_SETTINGS,
            **self.settings,
        }
        for _attempt in range(3):
            self.port = free_port()
            flags = " ".join(f"-c {key}={value}" for key, value in options.items())
            started = self._run(
                self.bin / "pg_ctl",
                "--pgdata",
                self.data,
                "--log",
                self.log,
                "--wait",
                "--timeout",
                "30",
                "-o",
                f"-p {self.port} {flags}",
                "start",
            )
            if started.returncode == 0:
                return self
        raise PostgresUnavailable(f"postgres did not start: {self.log_tail()}")

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text().splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        if self.data.exists():
            self._run(self.bin / "pg_ctl", "--pgdata", self.data, "--mode", "fast", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class ContainerCluster(Cluster):
    """The postgres image compose.yaml runs (tests.harness.base_images finds its tag), port
    5432 published on a free loopback port, removed by stop() and labelled with the run id so
    the leftovers check finds it if a run is killed."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.image = postgres_image(REPO)
        self.settings = {**FAST_SETTINGS, **(settings or {})}
        self.password = secrets.token_urlsafe(24)
        self.name = f"{run_id()}-postgres-{secrets.token_hex(3)}"
        self.port = 0

    def start(self) -> ContainerCluster:
        flags = [arg for key, value in self.settings.items() for arg in ("-c", f"{key}={value}")]
        docker(
            "run", "--detach", "--name", self.name, "--label", f"{RUN_LABEL}={run_id()}",
            "--env", f"POSTGRES_USER={SUPERUSER}", "--env", f"POSTGRES_PASSWORD={self.password}",
            "--env", "POSTGRES_DB=postgres", "--publish", "127.0.0.1::5432", "--tmpfs",
            "/var/lib/postgresql/data", self.image, *flags,
        )  # fmt: skip
        self.port = int(docker("port", self.name, "5432/tcp").stdout.split(":")[-1])
        deadline = time.monotonic() + CONTAINER_READY_TIMEOUT_S
        while True:
            try:
                psycopg.connect(**self._connect_args(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    logs = docker("logs", "--tail", "20", self.name, check=False).stderr
                    self.stop()
                    raise PostgresUnavailable(
                        f"{self.image} did not accept connections within "
                        f"{CONTAINER_READY_TIMEOUT_S}s: {error}\n{logs}"
                    ) from None
                time.sleep(0.3)

    def stop(self) -> None:
        docker("rm", "--force", "--volumes", self.name, check=False)
