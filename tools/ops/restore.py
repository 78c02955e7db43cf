"""restore ARCHIVE: the site's database and photos replaced by an archive's, all or nothing.

The steps, each with one way to fail:
  verify       the archive's structure and every checksum, that it is this project's, and
               every byte of the dump read back by pg_restore: a damaged, truncated or foreign
               archive is refused here, with nothing changed
  check        the release knows every migration in the archive (an older archive is fine:
               it gets the newer migrations below); the live database holds no data, or the
               operator said to replace it (--replace, or `yes` at the prompt)
  maintenance  the site leaves rotation: nginx answers /readyz with 503 and pages with the
               maintenance page (scripts/maintenance.py); web may stop from here on
  database     the dump into a new database beside the live one, in one transaction
  photos       the archive's photos into a new folder of the media volume, checked
  switch       web stopped; the new database and photos take the live ones' place (renames),
               the live ones are kept aside
  migrate      the release's migrations on the restored database
  serve        web started, healthy and ready; maintenance off; what was set aside removed
A failure (or Ctrl-C, or SIGTERM) after `check` puts the live database and photos back if they
were switched, removes what was restored beside them, starts web and ends maintenance: the
site comes back as it was, and the verb exits 1 with the step and the reason.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tools.ops import archive, commands
from tools.ops.archive import ArchiveError, Checked
from tools.ops.backup import human_size
from tools.ops.console import Console, OpsError
from tools.ops.data import Data
from tools.ops.project import Project
from tools.ops.readiness import NotReady, wait_ready

STEPS = ("verify", "check", "maintenance", "database", "photos", "switch", "migrate", "serve")
RESTORING_SUFFIX = "_restoring"
SET_ASIDE_SUFFIX = "_before_restore"


class Restore:
    def __init__(self, project: Project, console: Console, path: Path, replace: bool) -> None:
        self.project = project
        self.console = console
        self.path = path
        self.replace = replace
        self.data = Data(project)
        # Found by verify: the project and the archive, checked.
        self.name = ""
        self.checked: Checked | None = None
        self.manifest: dict = {}
        # Found by check: the release and the three database names.
        self.app = ""
        self.live = self.restoring = self.set_aside = ""
        # Whether web must be started again by undo(), and whether the site already serves the
        # restored data (from then on a failed clean-up is not undone).
        self.web_stopped = False
        self.done = False

    # --- the steps --------------------------------------------------------------------------

    def verify(self) -> None:
        engine, compose = self.project.check_versions()
        self.name = self.project.name()
        self.console.note(f"Docker Engine {engine}, compose {compose}; project {self.name}")
        self.project.compose_files_check()
        if not self.path.is_file():
            raise OpsError(f"{self.path} is not a file")
        try:
            key = archive.authentication_key(self.data.backup_key())
            self.checked = archive.check(self.path, key=key)
        except ArchiveError as error:
            raise OpsError(f"{self.path.name} is refused: {error}; nothing changed") from None
        if self.checked.project != self.name:
            raise OpsError(
                f"{self.path.name} is an archive of project {self.checked.project!r}, not of "
                f"{self.name!r}; nothing changed (restore it in that project's folder)"
            )
        self.manifest = self.checked.manifest
        self.console.note(f"{human_size(self.path.stat().st_size)}, made {self.manifest['created']}"
                          f" by release {self.manifest['app_version']}: every checksum "
                          "matches")  # fmt: skip
        self.data.require_db()
        try:
            toc = self.data.table_of_contents(self.dump())
            self.data.read_all(self.dump())
        except OpsError as error:
            raise OpsError(f"{self.path.name} is refused: its dump does not read back "
                           f"({error}); nothing changed", error.details) from None  # fmt: skip
        entries = sum(1 for line in toc.splitlines() if line and not line.startswith(";"))
        self.console.note(f"the dump's {entries} table-of-contents entries and all its data "
                          "read back")  # fmt: skip

    def check(self) -> None:
        self.app = self.project.setting("APP_VERSION", "latest")
        unknown = self.data.unknown_migrations(self.manifest["migrations"])
        if unknown:
            raise OpsError(
                f"the archive comes from a newer version: release {self.app} does not know its "
                f"migrations {', '.join(unknown)}; deploy {self.manifest['app_version']} (or "
                "later) first, then restore; nothing changed"
            )
        _, self.live = self.data.identity()
        self.restoring = self.live + RESTORING_SUFFIX
        self.set_aside = self.live + SET_ASIDE_SUFFIX
        # An interrupted restore's leftovers (this verb holds the project's lock).
        for leftover in (self.restoring, self.set_aside):
            if self.data.database_exists(leftover):
                self.data.drop_database(leftover)
                self.console.note(f"removed database {leftover}, left by an interrupted restore")
        # Also puts back the photos of an interrupted restore, if any: then counts them.
        photos = self.data.media("reset")
        tables = self.data.tables_with_rows(self.live)
        self.console.note(f"release {self.app}; database {self.live}: "
                          f"{', '.join(tables) or 'no data'}; {photos}")  # fmt: skip
        if tables and not self.replace:
            self.confirm(tables, photos)

    def confirm(self, tables: list[str], photos: str) -> None:
        question = (
            f"restore: database {self.live} holds data ({', '.join(tables)}) and the media "
            f"volume {photos}; the archive replaces them. Type yes to go on: "
        )
        print(question, end="", flush=True)
        answer = sys.stdin.readline() if sys.stdin is not None else ""
        if not sys.stdin or not sys.stdin.isatty():
            print(answer.strip() or "(no answer)", flush=True)
        if answer.strip().lower() != "yes":
            raise OpsError(
                f"database {self.live} holds data and the replacement was not confirmed; "
                "nothing changed (answer yes, or pass --replace)"
            )

    def maintenance(self) -> None:
        self.console.note(self.data.maintenance("on", f"restoring {self.path.name}"))

    def database(self) -> None:
        started = time.monotonic()
        self.data.create_database(self.restoring)
        self.data.restore_into(self.restoring, self.dump())
        self.console.note(f"restored into database {self.restoring} in "
                          f"{time.monotonic() - started:.1f} s (one transaction)")  # fmt: skip

    def photos(self) -> None:
        member = self.checked.members[archive.MEDIA]
        staged = self.data.stage_media(self.path, member)
        self.console.note(staged)

    def switch(self) -> None:
        self.web_stopped = True
        self.project.run(commands.stop_service("web"), what="stopping web", timeout=120)
        self.data.rename_databases([(self.live, self.set_aside), (self.restoring, self.live)])
        self.console.note(self.data.media("swap"))
        self.console.note(f"web stopped; database {self.live} and the photos are the archive's; "
                          f"the previous ones are kept aside until the site serves")  # fmt: skip

    def migrate(self) -> None:
        result = self.project.run(
            commands.one_off("web", *commands.MIGRATE), what="the release's migrations"
        )
        applied = (result.stdout + result.stderr).count("Applying ")
        self.console.note(f"{applied} migration(s) of release {self.app} applied")

    def serve(self) -> None:
        self.start_web()
        self.web_stopped = False
        self.console.note(self.data.maintenance("off"))
        self.done = True
        try:
            self.data.drop_database(self.set_aside)
            self.data.media("finish")
            self.console.note("the previous database and photos removed")
        except OpsError as error:
            self.console.note(f"warning: the previous data could not be removed ({error}); the "
                              "next restore removes it")  # fmt: skip

    # --- undoing ----------------------------------------------------------------------------

    def undo(self) -> None:
        """Back to the site as it was before maintenance. The database and the volume are
        looked at rather than remembered, so an interruption between two actions is undone as
        well; every action is tried, and what could not be done is said."""
        problems = []

        def attempt(what: str, action) -> None:
            try:
                action()
            except (OpsError, OSError) as error:
                problems.append(f"{what}: {error}")

        def database_back() -> None:
            # check() removed any database of that name: this run set the live one aside.
            if self.data.database_exists(self.set_aside):
                self.data.rename_databases(
                    [(self.live, self.restoring), (self.set_aside, self.live)]
                )
            self.data.drop_database(self.restoring)

        attempt("putting the previous database back", database_back)
        attempt("putting the previous photos back", lambda: self.data.media("reset"))
        if self.web_stopped:
            attempt("starting web", self.start_web)
        attempt("ending maintenance", lambda: self.data.maintenance("off"))
        if problems:
            self.console.note("undo incomplete: " + "; ".join(problems))
        else:
            self.console.note("undone: the previous database and photos serve again")

    # --- helpers ----------------------------------------------------------------------------

    def dump(self):
        return archive.chunks_of(self.path, self.checked.members[archive.DUMP])

    def start_web(self) -> None:
        self.project.run(commands.start_service("web"), what="starting web", timeout=120)
        web = self.project.containers("web")
        try:
            wait_ready(self.project, web, lambda: self.project.containers("web"))
        except NotReady as late:
            raise OpsError(
                f"web container {late.container.name} {late.why}. Its last log lines:",
                self.project.logs(late.container),
            ) from None
        self.console.note(f"{len(web)} web container(s) healthy and ready")

    def run(self) -> str:
        with self.console.step("verify"):
            self.verify()
        with self.console.step("check"):
            self.check()
        try:
            for name, action in (
                ("maintenance", self.maintenance), ("database", self.database),
                ("photos", self.photos), ("switch", self.switch), ("migrate", self.migrate),
                ("serve", self.serve),
            ):  # fmt: skip
                with self.console.step(name):
                    action()
        except BaseException:
            # Once the site serves the restored data, a failed clean-up is not undone.
            if not self.done:
                self.undo()
            raise
        photos = self.manifest["photos"]["files"]
        return (
            f"{self.path.name} restored into {self.name}: database {self.live} "
            f"(release {self.manifest['app_version']}'s, now migrated for {self.app}) and "
            f"{photos} photos; the site serves"
        )


def restore(project: Project, console: Console, path: Path, replace: bool) -> str:
    return Restore(project, console, path, replace).run()
