"""restore --time: the database to a second and the photos to the same moment, from the
continuous archive (tools/ops/archiving.py), all or nothing.

The steps, each with one way to fail:
  check        the moment (UTC, or `latest`), a repository that holds it (this VM's first,
               else the remote's), the photos' snapshot for it, and, when the database holds data,
               the operator's word (--replace, or `yes` at the prompt)
  maintenance  the site leaves rotation: 503 and the maintenance page (scripts/maintenance.py)
  stop         web, the worker and the photos' copy stop, then PostgreSQL, cleanly
  database     pgBackRest restores the newest base backup before the moment into a folder beside
               the data, with recovery to that second (postgres/restore-db.sh stage)
  photos       the snapshot into a folder beside the photos (postgres/photos-restore.sh stage)
  switch       both become the live ones (renames); the previous ones are kept aside
  recover      PostgreSQL starts, replays the archive to the moment and opens (a new timeline)
  migrate      web's role brought in line (db-roles), then the release's migrations on the
               restored database
  serve        web and the rest start, healthy and ready; maintenance off; what was set aside goes
A failure, Ctrl-C or SIGTERM before `serve` puts the previous database and photos back, starts
everything again and ends maintenance: the site comes back as it was.

The photos' snapshot is the first taken at or after the moment: it holds every photo whose upload
was acknowledged before it (a copy follows each change within seconds), so no restored row lacks
its file; a photo added in those seconds is one file too many, never shown. With no snapshot that
late (the moment is the archive's end) it is the newest, and the summary says which.
"""

from __future__ import annotations

import datetime
import sys
import time

from tools.ops import commands
from tools.ops.archiving import LOCAL, NAMES, TIME_FORMAT, Archiving, Window, shown
from tools.ops.console import Console, OpsError
from tools.ops.data import Data
from tools.ops.project import Project
from tools.ops.readiness import NotReady, wait_ready

STEPS = ("check", "maintenance", "stop", "database", "photos", "switch", "recover", "migrate",
         "serve")  # fmt: skip
LATEST = "latest"
# Services that write (or copy) data, stopped while the data is replaced; db last.
WRITERS = ("web", "worker", "photos-backup")
RECOVERY_TIMEOUT_S = 600
RECOVERY_LOG_LINES = 30
# PostgreSQL's words (13 and newer) when the archive ended before its recovery target.
NO_TRANSACTION_AFTER = "recovery ended before configured recovery target was reached"


def parse_moment(text: str) -> datetime.datetime | None:
    """A UTC moment from `YYYY-MM-DDTHH:MM:SSZ`; None for `latest`."""
    if text == LATEST:
        return None
    try:
        parsed = datetime.datetime.strptime(text, TIME_FORMAT)
    except ValueError:
        raise OpsError(
            f"--time {text!r}: give a UTC time as YYYY-MM-DDTHH:MM:SSZ, or latest"
        ) from None
    return parsed.replace(tzinfo=datetime.timezone.utc)


def pgbackrest_time(when: datetime.datetime) -> str:
    """The only form pgBackRest takes: `YYYY-MM-DD HH:MM:SS+00`."""
    return when.strftime("%Y-%m-%d %H:%M:%S+00")


class PointInTime:
    def __init__(
        self, project: Project, console: Console, moment: datetime.datetime | None, replace: bool
    ) -> None:
        self.project = project
        self.console = console
        self.moment = moment
        self.replace = replace
        self.archiving = Archiving(project)
        self.data = Data(project)
        # Chosen by check: the repository, pgBackRest's target, the photos' snapshot.
        self.repo = LOCAL
        self.target = LATEST
        self.snapshot = ""
        self.snapshot_time: datetime.datetime | None = None
        self.writers: list[str] = []
        # How far undo() has to go back, and whether the site already serves the result.
        self.stopped = False
        self.switched = False
        self.done = False

    # --- the steps --------------------------------------------------------------------------

    def check(self) -> None:
        engine, compose = self.project.check_versions()
        self.project.compose_files_check()
        self.data.require_db()
        windows = [self.archiving.window(repo) for repo in self.archiving.repos()]
        for window in windows:
            if window.unreachable:
                self.console.note(f"{NAMES[window.repo]} repository: UNREACHABLE, not used: "
                                  f"{window.unreachable}")  # fmt: skip
                continue
            self.console.note(f"{NAMES[window.repo]} repository: {window.backups} base "
                              f"backup(s), restorable from {shown(window.oldest)} to "
                              f"{shown(window.newest)}")  # fmt: skip
        chosen = self.choose(windows)
        self.repo = chosen.repo
        self.target = LATEST if self.moment is None else pgbackrest_time(self.moment)
        self.choose_snapshot()
        self.writers = [s for s in WRITERS if self.project.has_service(s)]
        tables = self.data.tables_with_rows(self.data.identity()[1])
        self.console.note(f"Docker Engine {engine}, compose {compose}; the database holds "
                          f"{', '.join(tables) or 'no data'}")  # fmt: skip
        if tables and not self.replace:
            self.confirm()

    def choose(self, windows: list[Window]) -> Window:
        if self.moment is None:
            usable = [w for w in windows if w.newest]
            if not usable:
                raise OpsError("no repository holds a base backup yet: run ./ops backup first")
            return usable[0]
        for window in windows:
            if window.holds(self.moment):
                return window
        spans = "; ".join(f"{NAMES[w.repo]}: {shown(w.oldest)} to {shown(w.newest)}"
                          for w in windows)  # fmt: skip
        raise OpsError(f"no repository can restore {shown(self.moment)} ({spans}); nothing changed")

    def choose_snapshot(self) -> None:
        snapshots = self.archiving.photo_snapshots(self.repo)
        if not snapshots:
            raise OpsError(f"the {NAMES[self.repo]} repository holds no snapshot of the photos")
        later = [s for s in snapshots if self.moment and s[1] >= self.moment]
        self.snapshot, self.snapshot_time = later[0] if later else snapshots[-1]
        self.console.note(f"from the {NAMES[self.repo]} repository: the database to "
                          f"{self.target}, the photos' snapshot {self.snapshot} taken "
                          f"{shown(self.snapshot_time)}")  # fmt: skip

    def confirm(self) -> None:
        question = (
            "restore: the database holds data and the photos volume its photos; the archive's "
            f"state at {self.target} replaces them. Type yes to go on: "
        )
        print(question, end="", flush=True)
        answer = sys.stdin.readline() if sys.stdin is not None else ""
        if answer.strip().lower() != "yes":
            raise OpsError("the database holds data and the replacement was not confirmed; "
                           "nothing changed (answer yes, or pass --replace)")  # fmt: skip

    def maintenance(self) -> None:
        self.console.note(self.data.maintenance("on", f"restoring to {self.target}"))

    def stop(self) -> None:
        self.stopped = True
        for service in [*self.writers, "db"]:
            self.project.run(commands.stop_service(service), what=f"stopping {service}",
                             timeout=180)  # fmt: skip
        self.console.note(f"stopped: {', '.join([*self.writers, 'db'])}")

    def database(self) -> None:
        started = time.monotonic()
        staged = self.restore_db("stage", str(self.repo), self.target)
        self.console.note(f"{staged} in {time.monotonic() - started:.1f} s")

    def photos(self) -> None:
        self.console.note(self.project.run(
            commands.one_off_with_profile("tools", "photos-restore", "stage", NAMES[self.repo],
                                          self.snapshot),
            what="restoring the photos' snapshot", timeout=3600,
        ).stdout.strip().splitlines()[-1])  # fmt: skip

    def switch(self) -> None:
        self.switched = True
        self.console.note(self.restore_db("swap"))
        self.console.note(self.data.media("swap"))

    def recover(self) -> None:
        started = time.monotonic()
        try:
            self.project.run(
                commands.up("db", wait=True, no_deps=True), what="PostgreSQL's recovery",
                timeout=RECOVERY_TIMEOUT_S,
            )  # fmt: skip
        except OpsError as error:
            raise self.why_recovery_failed(error) from None
        # Healthy means it answers, which it does while still replaying (read-only): opened
        # means recovery has ended.
        self.data.wait_until_opened(RECOVERY_TIMEOUT_S)
        self.console.note(f"PostgreSQL replayed the archive to {self.target} and opened in "
                          f"{time.monotonic() - started:.1f} s")  # fmt: skip

    def why_recovery_failed(self, error: OpsError) -> OpsError:
        """PostgreSQL's own reason, from its last lines. Recovery to a time stops at the first
        transaction committed after it; an archive that holds none (a site with no writes
        since) ends before PostgreSQL can tell it reached the moment, and it refuses to open."""
        logs = "\n".join(
            self.project.logs(c, RECOVERY_LOG_LINES) for c in self.project.containers("db")
        )
        fatal = [line for line in logs.splitlines() if "FATAL:" in line]
        if any(NO_TRANSACTION_AFTER in line for line in fatal):
            return OpsError(
                f"the archive holds no transaction committed after {self.target}, so "
                "PostgreSQL cannot tell that it reached that moment and does not open; if "
                "nothing was written since, that moment's state is the archive's end: "
                "./ops restore --time latest", fatal[-1])  # fmt: skip
        return OpsError(str(error), "\n".join(fatal) or error.details)

    def migrate(self) -> None:
        # The moment's roles are the cluster's: web's may predate its role, or its password.
        self.console.note(self.project.run(
            commands.one_off("db-roles"), what="web's database role",
        ).stdout.strip().splitlines()[-1])  # fmt: skip
        result = self.project.run(
            commands.one_off("web", *commands.MIGRATE), what="the release's migrations"
        )
        applied = (result.stdout + result.stderr).count("Applying ")
        self.console.note(f"{applied} migration(s) of the release applied")

    def serve(self) -> None:
        self.start_writers()
        self.console.note(self.data.maintenance("off"))
        self.done = True
        try:
            self.console.note(self.restore_db("finish"))
            self.console.note(self.data.media("finish"))
        except OpsError as error:
            self.console.note(f"warning: the previous data could not be removed ({error}); the "
                              "next restore removes it")  # fmt: skip

    # --- undoing ----------------------------------------------------------------------------

    def undo(self) -> None:
        """Back to the site as it was: the previous database and photos, everything running,
        maintenance off. Every action is tried; what could not be done is said."""
        problems = []

        def attempt(what: str, action) -> None:
            try:
                action()
            except (OpsError, OSError) as error:
                problems.append(f"{what}: {error}")

        if self.stopped:
            attempt("stopping db", lambda: self.project.run(commands.stop_service("db")))
            attempt("putting the previous database back", lambda: self.restore_db("reset"))
            attempt("putting the previous photos back", lambda: self.data.media("reset"))
            attempt("starting db", self.start_db)
            attempt("starting web and the rest", self.start_writers)
        attempt("ending maintenance", lambda: self.data.maintenance("off"))
        if problems:
            self.console.note("undo incomplete: " + "; ".join(problems))
        else:
            self.console.note("undone: the previous database and photos serve again")

    # --- helpers ----------------------------------------------------------------------------

    def restore_db(self, *args: str) -> str:
        """postgres/restore-db.sh in a one-off container of db (root, which backup-run drops)."""
        result = self.project.run(
            commands.one_off_as_root("db", "backup-run", "restore-db", *args),
            what=f"restore-db {args[0]}", timeout=3600,
        )  # fmt: skip
        return result.stdout.strip().splitlines()[-1]

    def start_db(self) -> None:
        self.project.run(
            commands.up("db", wait=True, no_deps=True), what="starting db",
            timeout=RECOVERY_TIMEOUT_S,
        )  # fmt: skip

    def start_writers(self) -> None:
        for service in self.writers:
            self.project.run(commands.start_service(service), what=f"starting {service}",
                             timeout=180)  # fmt: skip
        web = self.project.containers("web")
        try:
            wait_ready(self.project, web, lambda: self.project.containers("web"))
        except NotReady as late:
            raise OpsError(f"web container {late.container.name} {late.why}. Its last log lines:",
                           self.project.logs(late.container)) from None  # fmt: skip

    def run(self) -> str:
        with self.console.step("check"):
            self.check()
        try:
            for name, action in (
                ("maintenance", self.maintenance), ("stop", self.stop), ("database", self.database),
                ("photos", self.photos), ("switch", self.switch), ("recover", self.recover),
                ("migrate", self.migrate), ("serve", self.serve),
            ):  # fmt: skip
                with self.console.step(name):
                    action()
        except BaseException:
            if not self.done:
                self.undo()
            raise
        photos_when = shown(self.snapshot_time)
        return (f"the database restored to {self.target} from the {NAMES[self.repo]} repository, "
                f"the photos to their snapshot of {photos_when}; the site serves")  # fmt: skip


def restore_to(
    project: Project, console: Console, moment: datetime.datetime | None, replace: bool
) -> str:
    return PointInTime(project, console, moment, replace).run()
