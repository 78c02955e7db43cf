"""The stack's data as backup and restore reach it: the database through the running db
container (pg_dump, pg_restore and psql of the postgres image itself, so an archive is always
written and read by the server's own version), the photos and the maintenance flag through
one-off containers of the running release's web image (scripts/media_volume.py,
scripts/maintenance.py), the only image that has the volumes mounted the way the app uses them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tools.ops import commands
from tools.ops.archive import Member, chunks_of
from tools.ops.console import OpsError
from tools.ops.project import Project

SECRETS_DIR = "/run/secrets/catcollector"
BACKUP_KEY_FILE = f"{SECRETS_DIR}/backup_key"
# The tables of a database that hold at least one row, except those `migrate` fills by itself
# on any database (their rows are no one's data). One EXISTS per table, so it stays cheap on
# large tables.
TABLES_WITH_ROWS = (
    "SELECT n.nspname || '.' || c.relname FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%' "
    "AND c.relname NOT IN ('django_migrations', 'django_content_type', 'auth_permission') "
    "AND (xpath('/row/x/text()', query_to_xml(format("
    "'SELECT EXISTS (SELECT FROM %I.%I) AS x', n.nspname, c.relname), false, true, ''"
    ")))[1]::text = 'true' ORDER BY 1"
)
WAIT_POLL_S = 2
# The photos of an archive being restored: the copy in .ops/, where a one-off container finds it.
PHOTOS_COPY = "restore-photos.tar"
PHOTOS_MOUNT = "/restore/media.tar"
MEDIA_TIMEOUT_S = 3600


def quote(identifier: str) -> str:
    """An SQL identifier, double-quoted."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Data:
    def __init__(self, project: Project) -> None:
        self.project = project
        self._identity: tuple[str, str] | None = None

    def backup_key(self) -> str:
        """The key that encrypts the remote copies and authenticates the archives
        (init-secrets stores it in the secrets volume)."""
        return self.project.run(
            commands.one_off_as_root("db", "cat", BACKUP_KEY_FILE), what="reading the backup key"
        ).stdout.strip()  # fmt: skip

    # --- the database ---------------------------------------------------------------------

    def require_db(self) -> None:
        """The db service runs and is healthy; the stack's own database, not an external one."""
        if "db" not in self.project.config()["services"]:
            raise OpsError(
                "this stack has no db service (an external database, compose.external-db.yaml); "
                "back that database up with its provider's tools"
            )
        db = [c for c in self.project.containers("db") if c.state == "running"]
        if not db or db[0].health != "healthy":
            raise OpsError(
                "the db service is not running and healthy; start the stack first "
                "(./ops deploy, or docker compose up -d --wait)"
            )

    def wait_for_db(self, timeout_s: float) -> float:
        """Wait up to `timeout_s` for the db service to be running and healthy (a boot's first
        minutes: the engine starts containers in no particular order); the seconds it took.
        Not healthy by then: require_db says why."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            db = self.project.containers("db") if "db" in self.project.config()["services"] else []
            if db and db[0].state == "running" and db[0].health == "healthy":
                break
            time.sleep(WAIT_POLL_S)
        return time.monotonic() - started

    def wait_until_opened(self, timeout_s: float) -> None:
        """Until PostgreSQL has ended recovery (a restore's replay) and takes writes."""
        deadline = time.monotonic() + timeout_s
        while self.psql("SELECT pg_is_in_recovery()", what="asking whether recovery ended") != "f":
            if time.monotonic() > deadline:
                raise OpsError(f"PostgreSQL was still recovering after {timeout_s:g} s")
            time.sleep(WAIT_POLL_S)

    def identity(self) -> tuple[str, str]:
        """(role, database) as the db container was configured (POSTGRES_USER, POSTGRES_DB)."""
        if self._identity is None:
            printed = self.project.run(
                commands.in_service("db", "sh", "-c", 'echo "$POSTGRES_USER"; echo "$POSTGRES_DB"'),
                what="reading the database's name",
            ).stdout.split("\n")
            self._identity = (printed[0] or "postgres", printed[1] or printed[0] or "postgres")
        return self._identity

    def app_role(self) -> str:
        """web's role (compose.yaml, x-app-role; db-roles makes it): restored data is loaded
        as this role and belongs to it, so a dump can do nothing web could not."""
        return self.project.config()["services"]["web"]["environment"]["POSTGRES_USER"]

    def app_role_exists(self) -> bool:
        found = self.psql(
            f"SELECT 1 FROM pg_roles WHERE rolname = {literal(self.app_role())}",  # noqa: S608
            what="looking for web's database role",
        )  # fmt: skip
        return found == "1"

    def psql(
        self, sql: str, database: str = "postgres", *, what: str = "psql", transaction: bool = True
    ) -> str:
        """Run `sql` as the stack's role, in one transaction unless told not to (DROP and
        CREATE DATABASE cannot run in one); psql's unaligned output."""
        role, _ = self.identity()
        result = self.project.run(
            commands.in_service("db",
                "psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align",
                "--set=ON_ERROR_STOP=1", *(["--single-transaction"] if transaction else []),
                f"--username={role}", f"--dbname={database}", f"--command={sql}",
            ),
            what=what,
        )  # fmt: skip
        return result.stdout.strip()

    def server_version(self) -> str:
        return self.psql("SHOW server_version", what="asking the database's version")

    def dump(self) -> Iterator[bytes]:
        """pg_dump of the live database in the custom format: one snapshot, taken without
        blocking readers or writers (it does block schema changes until it ends)."""
        role, database = self.identity()
        return self.project.stream(
            commands.in_service(
                "db", "pg_dump", "--format=custom", f"--username={role}", f"--dbname={database}"
            ),
            what="pg_dump",
        )

    def pg_restore(self, source: Iterable[bytes], *args: str, what: str) -> bytes:
        """pg_restore with the archive's dump on its stdin; its stdout."""
        return self.project.output(
            commands.in_service("db", "pg_restore", *args), source=source, what=what
        )

    def table_of_contents(self, source: Iterable[bytes]) -> str:
        """`pg_restore --list`: reads the dump's header and table of contents only."""
        return self.pg_restore(
            source, "--list", what="reading the dump's table of contents"
        ).decode()

    def read_all(self, source: Iterable[bytes]) -> None:
        """Every byte of the dump read and decompressed (zlib checks each block): the only way
        to catch a truncated or damaged dump, which `--list` does not notice."""
        self.pg_restore(source, "--file=/dev/null", what="reading all of the dump's data")

    def migrations_in(self, source: Iterable[bytes]) -> list[str]:
        """The applied migrations recorded in the dump itself (django_migrations' rows in the
        dump's snapshot), as app.name."""
        script = self.pg_restore(
            source, "--data-only", "--table=django_migrations", "--file=-",
            what="reading the dump's migrations",
        ).decode()  # fmt: skip
        return parse_migrations(script)

    def tables_with_rows(self, database: str) -> list[str]:
        """Tables of `database` that hold at least one row, bookkeeping aside."""
        output = self.psql(TABLES_WITH_ROWS, database, what="looking for data in the database")
        return [line.removeprefix("public.") for line in output.splitlines() if line]

    def database_exists(self, name: str) -> bool:
        found = self.psql(
            f"SELECT 1 FROM pg_database WHERE datname = {literal(name)}",  # noqa: S608
            what="listing the databases",
        )  # fmt: skip
        return found == "1"

    def drop_database(self, name: str) -> None:
        self.psql(
            f"DROP DATABASE IF EXISTS {quote(name)} WITH (FORCE)",
            what=f"dropping database {name}", transaction=False,
        )  # fmt: skip

    def create_database(self, name: str) -> None:
        self.psql(
            f"CREATE DATABASE {quote(name)} OWNER {quote(self.app_role())} TEMPLATE template0",
            what=f"creating database {name}", transaction=False,
        )  # fmt: skip

    def restore_into(self, name: str, source: Iterable[bytes]) -> None:
        """The whole dump into the empty database `name`, in one transaction: all or nothing.
        Loaded as web's role, never the superuser, over the container's socket: objects belong
        to it whatever role owned them when dumped, and what needs a superuser (an event
        trigger, a program run by COPY, an untrusted language) fails the restore."""
        self.pg_restore(
            source, "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
            f"--username={self.app_role()}", f"--dbname={name}",
            what="pg_restore",
        )  # fmt: skip

    def rename_databases(self, renames: list[tuple[str, str]]) -> None:
        """Renames, in one transaction, after closing every other session to those databases
        (web is stopped; this ends anything left, such as a probe's)."""
        names = ", ".join(literal(old) for old, _ in renames)
        statements = " ".join(
            f"ALTER DATABASE {quote(old)} RENAME TO {quote(new)};" for old, new in renames
        )
        for attempt in range(3):
            self.psql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "  # noqa: S608
                f"WHERE datname IN ({names}) AND pid <> pg_backend_pid()",
                what="closing sessions to the databases",
            )  # fmt: skip
            try:
                self.psql(statements, what="renaming the databases")
                return
            except OpsError:
                if attempt == 2:
                    raise

    # --- one-off containers of the release's web image ---------------------------------------

    def media(self, *command: str, mounts: Iterable[str] = ()) -> str:
        return self.project.run(
            commands.one_off("web", *commands.MEDIA, *command, mounts=mounts),
            what=f"media_volume.py {command[0]}", timeout=MEDIA_TIMEOUT_S,
        ).stdout.strip()  # fmt: skip

    def stage_media(self, archive_path: Path, member: Member) -> str:
        """An archive's photos (its media.tar) into the media volume's staged folder. The
        container reads a copy of media.tar alone, world-readable (photos are public; the archive
        is not: its dump holds password hashes), mounted read-only: its user is the web image's,
        not the archive's owner."""
        copy = self.project.state_dir / PHOTOS_COPY
        self.project.state_dir.mkdir(exist_ok=True)
        remove_staged_copy(copy)
        try:
            with copy.open("wb") as out:
                for chunk in chunks_of(archive_path, member):
                    out.write(chunk)
            copy.chmod(0o644)
            return self.media("stage", PHOTOS_MOUNT, mounts=[f"{copy}:{PHOTOS_MOUNT}"])
        finally:
            remove_staged_copy(copy)

    def pack_media(self) -> Iterator[bytes]:
        return self.project.stream(
            commands.one_off("web", *commands.MEDIA, "pack"), what="packing the photos"
        )

    def pack_secrets(self) -> Iterator[bytes]:
        return self.project.stream(
            commands.one_off(
                "web", "tar", "--create", "--file=-", f"--directory={SECRETS_DIR}", "."
            ),
            what="packing the secrets",
        )

    def maintenance(self, state: str, reason: str = "") -> str:
        args = (state, reason) if reason else (state,)
        return self.project.run(
            commands.one_off("publish", *commands.MAINTENANCE, *args), what=f"maintenance {state}"
        ).stdout.strip()

    def unknown_migrations(self, migrations: list[str]) -> list[str]:
        """Those of `migrations` the running release's code does not have."""
        answer = self.project.run(
            commands.one_off("web", *commands.UNKNOWN_MIGRATIONS, "--migrations", *migrations),
            what="comparing the archive's migrations with the release's",
        ).stdout  # fmt: skip
        return json.loads(answer.strip().splitlines()[-1])["unknown"]


def parse_migrations(script: str) -> list[str]:
    """app.name of each row of django_migrations in a plain SQL script's COPY block."""
    lines = iter(script.splitlines())
    for line in lines:
        match = re.match(r"COPY \S*django_migrations \(([^)]*)\) FROM stdin;", line)
        if match:
            columns = [column.strip().strip('"') for column in match[1].split(",")]
            app, name = columns.index("app"), columns.index("name")
            found = []
            for row in lines:
                if row == "\\.":
                    return sorted(found)
                values = row.split("\t")
                found.append(f"{values[app]}.{values[name]}")
    return []


def remove_staged_copy(path: Path) -> None:
    """The copy stage_media mounts, or the empty folder Docker makes in its place: a restore
    interrupted while its one-off container was being created removes the copy, and the
    daemon, which goes on starting the container, then makes the missing bind source a
    folder. Left there, every later restore failed writing the copy."""
    if path.is_dir():
        path.rmdir()
    else:
        path.unlink(missing_ok=True)
