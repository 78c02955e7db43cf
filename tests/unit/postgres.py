"""A throwaway PostgreSQL cluster built from Debian's server binaries, for tests and benchmarks.

It listens on a free loopback port with password authentication (like the stack's database)
and keeps its socket in its own directory, so it never collides with a system cluster.
Runs the server as the `postgres` user when started as root, since PostgreSQL refuses root.
"""

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BINARY_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "cats"


class PostgresUnavailable(RuntimeError):
    pass


def find_binaries() -> Path:
    candidates = sorted(
        (Path(p) for p in glob.glob(BINARY_GLOB) if (Path(p) / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise PostgresUnavailable(
            f"no PostgreSQL server binaries in {BINARY_GLOB}; install them with "
            "`apt-get install -y postgresql` (tests/run does this on a fresh machine)"
        )
    return candidates[-1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.bin = find_binaries()
        self.settings = settings or {}
        self.password = secrets.token_urlsafe(24)
        self.root = Path(tempfile.mkdtemp(prefix="cats-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self.port = 0
        self._owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

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

    def _run(self, *command: str | Path) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if self._owner else []
        return subprocess.run(
            [*prefix, *map(str, command)],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
        )

    def start(self) -> "Cluster":
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
            # A throwaway cluster: durability buys nothing and costs time.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
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

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(self.bin / "psql"),
                "--no-psqlrc",
                "--tuples-only",
                "--no-align",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--username",
                SUPERUSER,
                "--dbname",
                database,
                "--command",
                sql,
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PGPASSWORD": self.password},
        )
        return result.stdout.strip()

    def stop(self) -> None:
        if self.data.exists():
            self._run(self.bin / "pg_ctl", "--pgdata", self.data, "--mode", "fast", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
