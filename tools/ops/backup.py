"""backup and backups: one verified archive of the site's data per run, and the list of them.

The steps of `backup`, each with one way to fail:
  check     versions, the db service, the archive folder (OPS_BACKUP_DIR) and retention settings
  base backups  pgBackRest's base backup into each repository of the continuous archive (this
            VM's, and the remote's with OPS_BACKUP_REMOTE): full once a week, differential
            otherwise; the WAL archived since the oldest one kept restores any second after it
            (./ops restore --time); the photos' snapshots older than that go too
  database  pg_dump (one consistent snapshot; the site keeps serving) into the archive
  photos    the media volume, packed after the dump: a photo uploaded meanwhile is one file too
            many, never a row without its file (a photo replaced meanwhile can be missing: its
            old file is deleted once the edit commits)
  verify    the archive's structure and checksums, the dump's table of contents and every byte
            of its data read back by pg_restore; only then is the archive renamed to its name
  prune     archives beyond retention (OPS_BACKUP_KEEP_DAILY, OPS_BACKUP_KEEP_WEEKLY) removed;
            only good archives count, and the newest is never removed
  restore check  the newest base backup restored to a point marked now, in a scratch database,
            every table's row count compared (tools/ops/restore_check.py); last, so that a
            failure there still leaves the day's archive
The archive of the other steps is the portable export: a pg_dump any PostgreSQL reads, and the
photos as a tar. It is written as a hidden temporary file (fsynced, renamed, folder fsynced), so an
interrupted or failed run never leaves anything that looks like a backup; its leftovers are
removed by the next run. The last line printed is the archive's path.
"""

from __future__ import annotations

import datetime
import os
import pwd
import socket
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from tools.ops import archive
from tools.ops.archive import ArchiveError, Checked
from tools.ops.archiving import NAMES, Archiving, shown
from tools.ops.console import Console, OpsError
from tools.ops.data import Data
from tools.ops.project import Project
from tools.ops.restore_check import RestoreCheck, last_result, shown_result

STEPS = ("check", "base backups", "database", "photos", "verify", "prune", "restore check")
LIST_STEPS = ("archives", "continuous")
# Archiving is behind when a segment has waited longer than this: twice archive_timeout
# (compose.yaml) for the remote's round trip.
ARCHIVE_LAG_LIMIT = datetime.timedelta(seconds=60)
# Outside the checkout: a clone removed or replaced keeps its archives. One folder serves every
# project of the VM (an archive's name starts with its project's).
DEFAULT_DIR = "/var/backups/catcollector"
DEFAULT_DAILY = 7
DEFAULT_WEEKLY = 4
MAX_KEEP = 1000
# Where the db image finds the backup key (postgres/backup-env.sh).
# An archive without secrets still holds password hashes and sessions: group-readable at
# most (for a backup-shipping user in the group); with secrets, the owner only.
MODE, SECRETS_MODE = 0o640, 0o600
SECRETS_WARNING = (
    "warning: this archive holds the stack's secrets (the Django key, the database "
    "password, the backup key): anyone who can read it can sign sessions, reach the database "
    "and make archives this stack restores; keep it as safe as the secrets themselves "
    "(mode 0600)"
)


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError  # unreachable


def human_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def whole_setting(project: Project, name: str, default: int, minimum: int) -> int:
    value = project.setting(name, str(default))
    if not value.isdigit() or not minimum <= int(value) <= MAX_KEEP:
        raise OpsError(f"{name}={value!r}: use a whole number from {minimum} to {MAX_KEEP}")
    return int(value)


@dataclass(frozen=True)
class Entry:
    """An archive of this project in the folder, checked (`good`) or not (`problem`)."""

    path: Path
    time: datetime.datetime
    size: int
    checked: Checked | None
    problem: str = ""

    @property
    def good(self) -> bool:
        return self.checked is not None


class Store:
    """The archive folder (OPS_BACKUP_DIR, relative to the project folder), this project's
    archives in it."""

    def __init__(self, project: Project, name: str) -> None:
        self.project = project
        self.name = name
        setting = project.setting("OPS_BACKUP_DIR", DEFAULT_DIR)
        self.directory = (project.directory / setting).resolve()

    def ensure(self) -> None:
        if self.directory.exists() and not self.directory.is_dir():
            raise OpsError(f"OPS_BACKUP_DIR={self.directory} is not a folder")
        try:
            self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as error:
            raise OpsError(f"cannot create OPS_BACKUP_DIR {self.directory} ({error.strerror}); "
                           f"{self.fix()}") from None  # fmt: skip
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise OpsError(f"OPS_BACKUP_DIR {self.directory} is not writable by this user; "
                           f"{self.fix()}")  # fmt: skip

    def fix(self) -> str:
        user = pwd.getpwuid(os.geteuid()).pw_name
        return (f"make it this user's once: sudo install -d -m 0750 -o {user} {self.directory} "
                "(sudo ./ops schedule does), or set OPS_BACKUP_DIR in .env")  # fmt: skip

    def paths(self) -> list[tuple[Path, datetime.datetime]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            parsed = archive.parse_name(path.name)
            if parsed and parsed[0] == self.name and path.is_file():
                found.append((path, parsed[1]))
        return sorted(found, key=lambda item: item[1])

    def entries(self, *, checksums: bool) -> list[Entry]:
        """Every archive of this project, oldest first, checked: structure and manifest only
        (a few blocks each), or every checksum too (reads them whole)."""
        entries = []
        for path, when in self.paths():
            size = path.stat().st_size
            try:
                checked = archive.check(path, key=None, checksums=checksums)
                if checked.project != self.name:
                    raise ArchiveError(f"an archive of project {checked.project!r}")
                entries.append(Entry(path, when, size, checked))
            except ArchiveError as error:
                entries.append(Entry(path, when, size, None, str(error)))
        return entries

    def partials(self) -> list[Path]:
        prefix = f".{self.name}-"
        return [
            path
            for path in self.directory.iterdir()
            if path.name.startswith(prefix) and path.name.endswith(archive.PARTIAL_SUFFIX)
        ]


class Backup:
    def __init__(
        self, project: Project, console: Console, with_secrets: bool, wait_s: float = 0
    ) -> None:
        self.project = project
        self.console = console
        self.with_secrets = with_secrets
        self.wait_s = wait_s
        self.data = Data(project)
        self.name = project.name()
        self.store = Store(project, self.name)
        # Read by check: retention and the running release.
        self.daily = self.weekly = 0
        self.app = ""
        # The archive being written (open_archive): its time, final and temporary names.
        self.created: datetime.datetime | None = None
        self.final: Path | None = None
        self.partial: Path | None = None
        self.out = None
        self.writer: archive.Writer | None = None
        # Seals the archive (archive.AUTH), from the backup key.
        self.key = b""
        # What the steps found, for the manifest and the summary.
        self.server = ""
        self.toc_entries = self.tables = 0
        self.migrations: list[str] = []
        self.photo_count = self.photo_bytes = 0
        self.size = 0

    def check(self) -> None:
        # Settings first: a mistake there is reported before anything waits on the engine.
        self.daily = whole_setting(self.project, "OPS_BACKUP_KEEP_DAILY", DEFAULT_DAILY, 0)
        self.weekly = whole_setting(self.project, "OPS_BACKUP_KEEP_WEEKLY", DEFAULT_WEEKLY, 0)
        self.store.ensure()
        engine, compose = self.project.check_versions()
        self.project.compose_files_check()
        if self.wait_s:
            waited = self.data.wait_for_db(self.wait_s)
            self.console.note(f"the db service was healthy after {waited:.0f} s")
        self.data.require_db()
        # This verb holds the project's lock: a temporary file is an interrupted run's.
        for leftover in self.store.partials():
            leftover.unlink()
            self.console.note(f"removed {leftover.name}, left by an interrupted backup")
        self.app = self.project.setting("APP_VERSION", "latest")
        self.key = archive.authentication_key(self.data.backup_key())
        self.console.note(f"Docker Engine {engine}, compose {compose}; project {self.name}, "
                          f"release {self.app}; archives in {self.store.directory}")  # fmt: skip

    def open_archive(self) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        # One archive per second at most: its name is its time.
        while (self.store.directory / archive.archive_name(self.name, now)).exists():
            time.sleep(0.2)
            now = datetime.datetime.now(datetime.timezone.utc)
        self.created = now.replace(microsecond=0)
        self.final = self.store.directory / archive.archive_name(self.name, self.created)
        self.partial = self.store.directory / f".{self.final.name}{archive.PARTIAL_SUFFIX}"
        mode = SECRETS_MODE if self.with_secrets else MODE
        descriptor = os.open(self.partial, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
        os.fchmod(descriptor, mode)
        self.out = os.fdopen(descriptor, "w+b")
        self.writer = archive.Writer(self.out, self.created.timestamp(), mode)

    def member_chunks(self, name: str):
        """What was just written as `name`, read back from the file being written."""
        self.out.flush()
        start = self.out.tell() - archive.padding(self.writer.sizes[name]) - self.writer.sizes[name]
        return archive.chunks_of(self.partial, archive.Member(name, start, self.writer.sizes[name]))

    def database(self) -> None:
        started = time.monotonic()
        self.server = self.data.server_version()
        size = self.writer.member(archive.DUMP, self.data.dump())
        seconds = time.monotonic() - started
        toc = self.data.table_of_contents(self.member_chunks(archive.DUMP))
        self.toc_entries = sum(1 for line in toc.splitlines() if line and not line.startswith(";"))
        self.tables = sum(1 for line in toc.splitlines() if " TABLE DATA " in line)
        self.migrations = self.data.migrations_in(self.member_chunks(archive.DUMP))
        if not self.migrations:
            raise OpsError("the dump holds no applied migrations (django_migrations): is this "
                           "the app's database?")  # fmt: skip
        self.console.note(f"pg_dump (PostgreSQL {self.server}): {human_size(size)} in "
                          f"{seconds:.1f} s; {self.tables} tables, {len(self.migrations)} "
                          "migrations applied")  # fmt: skip

    def photos(self) -> None:
        started = time.monotonic()
        size = self.writer.member(archive.MEDIA, self.data.pack_media())
        self.out.flush()
        start = self.out.tell() - archive.padding(size) - size
        member = archive.Member(archive.MEDIA, start, size)
        with archive.Window(self.partial, member) as window, tarfile.open(fileobj=window) as tar:
            files = [info for info in tar.getmembers() if info.isfile()]
        self.photo_count, self.photo_bytes = len(files), sum(info.size for info in files)
        self.console.note(f"{self.photo_count} photos, {human_size(self.photo_bytes)}, in "
                          f"{time.monotonic() - started:.1f} s")  # fmt: skip
        if self.with_secrets:
            self.writer.member(archive.SECRETS, self.data.pack_secrets())
            self.console.note(SECRETS_WARNING)

    def seal(self) -> None:
        manifest = {
            "project": self.name,
            "created": self.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "host": socket.gethostname(),
            "app_version": self.app,
            "proxy_version": self.project.setting("NGINX_VERSION", "latest"),
            "database": {"server_version": self.server, "format": "pg_dump custom",
                         "tables": self.tables, "toc_entries": self.toc_entries},
            "migrations": self.migrations,
            "photos": {"files": self.photo_count, "bytes": self.photo_bytes},
            "secrets": self.with_secrets,
        }  # fmt: skip
        self.writer.finish(manifest, self.key)
        self.out.flush()
        os.fsync(self.out.fileno())
        self.out.close()

    def verify(self) -> None:
        self.seal()
        checked = archive.check(self.partial, key=self.key)
        dump = checked.members[archive.DUMP]
        self.data.read_all(archive.chunks_of(self.partial, dump))
        os.replace(self.partial, self.final)
        archive.fsync_directory(self.store.directory)
        self.partial = None
        self.size = self.final.stat().st_size
        self.console.note(f"{len(checked.members)} members match their checksums; the dump's "
                          f"{self.toc_entries} table-of-contents entries and all its data read "
                          "back")  # fmt: skip

    def prune(self) -> None:
        entries = self.store.entries(checksums=False)
        good = [entry for entry in entries if entry.good]
        keep = archive.retained([entry.time for entry in good], self.daily, self.weekly)
        removed = []
        for entry in good:
            if entry.time not in keep:
                entry.path.unlink()
                removed.append(entry.path.name)
        if removed:
            archive.fsync_directory(self.store.directory)
        for entry in entries:
            if not entry.good:
                self.console.note(f"not counted, left in place: {entry.path.name}: {entry.problem}")
        self.console.note(f"kept {len(keep)} (last {self.daily} days, {self.weekly} weeks); "
                          f"removed {', '.join(removed) or 'none'}")  # fmt: skip

    def base_backups(self) -> None:
        archiving = Archiving(self.project)
        archiving.stanza()
        now = datetime.datetime.now(datetime.timezone.utc)
        for repo in archiving.repos():
            started = time.monotonic()
            label = archiving.base_backup(repo, now)
            self.console.note(f"{NAMES[repo]} repository: base backup {label} in "
                              f"{time.monotonic() - started:.1f} s")  # fmt: skip
            # pgBackRest expired what retention drops; the photos follow the same window.
            oldest = archiving.window(repo).oldest or now
            self.console.note(archiving.forget_photos(repo, oldest, now))

    def run(self) -> str:
        with self.console.step("check"):
            self.check()
        with self.console.step("base backups"):
            self.base_backups()
        try:
            self.open_archive()
            with self.console.step("database"):
                self.database()
            with self.console.step("photos"):
                self.photos()
            with self.console.step("verify"):
                try:
                    self.verify()
                except ArchiveError as error:
                    raise OpsError(f"the new archive failed verification: {error}") from None
        except BaseException:
            self.discard()
            raise
        with self.console.step("prune"):
            self.prune()
        with self.console.step("restore check"):
            self.console.note(RestoreCheck(self.project, self.console).run())
        return (
            f"{self.final.name}, {human_size(self.size)}: release {self.app}, {self.tables} "
            f"tables, {self.photo_count} photos{', secrets included' if self.with_secrets else ''}"
        )

    def discard(self) -> None:
        if self.out is not None and not self.out.closed:
            self.out.close()
        if self.partial is not None:
            self.partial.unlink(missing_ok=True)


def backup(
    project: Project, console: Console, with_secrets: bool, wait_s: float = 0
) -> tuple[str, Path]:
    run = Backup(project, console, with_secrets, wait_s)
    summary = run.run()
    return summary, run.final


SHOW_KEY = ("the backup key, printed below: keep it off this VM (a password manager); a new VM "
            "restores from the remote with it as OPS_BACKUP_KEY")  # fmt: skip


def backups(
    project: Project, console: Console, max_age_hours: float | None, verify: bool = False
) -> str:
    """The archives with age, size and state (every checksum checked), and what the continuous
    archive can restore. With `max_age_hours`, fails unless the newest good archive is younger
    and the continuous archiving is current (for monitoring)."""
    store = Store(project, project.name())
    now = datetime.datetime.now(datetime.timezone.utc)
    with console.step("archives"):
        entries = store.entries(checksums=True)
        for entry in entries:
            age = human_age((now - entry.time).total_seconds())
            if entry.good:
                manifest = entry.checked.manifest
                state = (f"verified: release {manifest['app_version']}, "
                         f"{manifest['photos']['files']} photos"
                         f"{', secrets' if manifest.get('secrets') else ''}")  # fmt: skip
            else:
                state = f"DAMAGED: {entry.problem}"
            console.note(f"{entry.path.name}  {age:>6} old  {human_size(entry.size):>8}  {state}")
    good = [entry for entry in entries if entry.good]
    damaged = len(entries) - len(good)
    if not good:
        summary = f"no good archive of {store.name} in {store.directory}"
    else:
        newest_age = (now - good[-1].time).total_seconds()
        summary = (
            f"{len(good)} good archive(s) in {store.directory}, newest {human_age(newest_age)} old"
        )
        if damaged:
            summary += f", {damaged} damaged"
    with console.step("continuous"):
        current, state = continuous_archive(project, console, now)
        restorable, line = shown_result(last_result(project))
        console.note(line)
    if not restorable:
        current, state = False, f"{state}; the last restore check FAILED"
    summary += f"; continuous archiving {state}"
    if verify:
        archiving = Archiving(project)
        damaged = [f"{NAMES[repo]}: {problem}" for repo in archiving.repos()
                   if (problem := archiving.verify(repo))]  # fmt: skip
        if damaged:
            raise OpsError(f"{summary}; DAMAGED: {'; '.join(damaged)}")
        summary += "; every repository reads back whole"
    if max_age_hours is not None and (
        not good or (now - good[-1].time).total_seconds() > max_age_hours * 3600
    ):
        raise OpsError(f"{summary}; no archive is younger than {max_age_hours:g} h")
    if max_age_hours is not None and not current:
        raise OpsError(summary)
    return summary


def continuous_archive(
    project: Project, console: Console, now: datetime.datetime
) -> tuple[bool, str]:
    """What each repository can restore, whether PostgreSQL's archiver and the photos' copy
    keep up: (current, a few words saying so)."""
    archiving = Archiving(project)
    problems = []
    for repo in archiving.repos():
        window = archiving.window(repo)
        if window.unreachable:
            console.note(f"{NAMES[repo]} repository: UNREACHABLE: {window.unreachable}")
            problems.append(f"the {NAMES[repo]} repository cannot be read: {window.unreachable}")
            continue
        if window.newest is None:
            console.note(f"{NAMES[repo]} repository: nothing to restore yet (no base backup: "
                         "./ops backup)")  # fmt: skip
            continue
        console.note(f"{NAMES[repo]} repository: any second from {shown(window.oldest)} to "
                     f"{shown(window.newest)} ({window.backups} base backup(s))")  # fmt: skip
    archiver = archiving.archiver()
    lag = archiver.lag(now)
    if archiver.failing:
        problems.append(f"the last WAL segment failed to archive at {shown(archiver.last_failed)}")
    if lag > ARCHIVE_LAG_LIMIT:
        problems.append(f"{archiver.waiting} WAL segment(s) waiting, the oldest for "
                        f"{human_age(lag.total_seconds())}")  # fmt: skip
    for repo, copy in sorted(archiving.photos_copy_state().items()):
        if copy.startswith("failed"):
            problems.append(f"the photos' {NAMES[repo]} copy failed: {copy.split(' ', 2)[-1]}")
    console.note(f"database archiver: {archiver.waiting} segment(s) waiting, last archived "
                 f"{shown(archiver.last_archived)}")  # fmt: skip
    if problems:
        return False, "BEHIND: " + "; ".join(problems)
    return True, "current"
