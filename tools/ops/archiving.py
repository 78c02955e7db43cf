"""Continuous archiving, as the verbs see it: pgBackRest in the db container (its base backups,
what each repository holds, whether PostgreSQL's archiver keeps up) and restic's snapshots of the
photos (the photos-backup service), for backup, backups, restore --time and recover.

Repository 1 is this VM's (the db-archive and photos-archive volumes), repository 2 the remote's
(OPS_BACKUP_REMOTE). A moment can be restored from a repository when it holds a base backup that
ended before it and every WAL segment since: the window runs from its oldest base backup's end
to the arrival of its newest segment.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass

from tools.ops import commands
from tools.ops.console import OpsError
from tools.ops.project import Project

LOCAL, REMOTE = 1, 2
NAMES = {LOCAL: "local", REMOTE: "remote"}
# A full base backup when the newest is older than this; a differential one otherwise.
FULL_EVERY = datetime.timedelta(days=7)
WAL_SEGMENT = re.compile(r"/[0-9A-F]{24}-[0-9a-f]{40}(\.\w+)?$")
PGBACKREST_TIMEOUT_S = 3600
# PostgreSQL's archiver: the last segment archived and the last failure, and the segments
# waiting (their age is the archive's lag).
ARCHIVER = (
    "SELECT extract(epoch FROM last_archived_time), extract(epoch FROM last_failed_time), "
    "(SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'), "
    "(SELECT extract(epoch FROM min(modification)) FROM pg_ls_archive_statusdir() "
    "WHERE name LIKE '%.ready') FROM pg_stat_archiver"
)


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Where ./ops backup's restore check leaves its result (.ops/), read by ./ops backups and by
# monitoring: {"time", "ok", "restore_point", "tables", "rows", "seconds", "problem"}.
RESTORE_CHECK_FILE = "restore-check.json"
# How long a restore point's WAL segment may take to reach this VM's repository (it is closed at
# once: pg_switch_wal).
POINT_ARCHIVED_TIMEOUT_S = 120
RESTORE_POINT = ("python", "/app/scripts/restore_point.py")
# compose.yaml's volume for the restore check's scratch database.
SCRATCH_VOLUME = "restore-scratch"


def shown(when: datetime.datetime | None) -> str:
    """A moment as the verbs write and read it (UTC)."""
    return when.strftime(TIME_FORMAT) if when else "nothing"


def moment(epoch: float | None) -> datetime.datetime | None:
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)


@dataclass(frozen=True)
class Window:
    """What one repository can restore: from `oldest` to `newest` (None: nothing yet, or
    `unreachable` says why it could not be read)."""

    repo: int
    oldest: datetime.datetime | None
    newest: datetime.datetime | None
    backups: int
    unreachable: str | None = None

    def holds(self, when: datetime.datetime) -> bool:
        return bool(self.oldest and self.newest and self.oldest <= when <= self.newest)


@dataclass(frozen=True)
class Archiver:
    last_archived: datetime.datetime | None
    last_failed: datetime.datetime | None
    waiting: int
    oldest_waiting: datetime.datetime | None

    @property
    def failing(self) -> bool:
        """The last attempt failed: a repository (the remote, usually) does not take segments."""
        if self.last_failed is None:
            return False
        return self.last_archived is None or self.last_failed > self.last_archived

    def lag(self, now: datetime.datetime) -> datetime.timedelta:
        """How long the oldest segment has waited to be archived (zero: none waits)."""
        if self.oldest_waiting is None:
            return datetime.timedelta(0)
        return now - self.oldest_waiting


COUNTS = re.compile(r"^\s+missing: \d+, checksum invalid: \d+, size invalid: \d+, other: \d+$")


def verify_problem(report: str) -> str | None:
    """What pgBackRest's verify report (--output=text) names as wrong: each backup or WAL range
    whose counts are not all zero, with them; None when its status is ok (--verbose: without it
    a whole repository gives no report at all)."""
    if re.search(r"^status: ok$", report, re.MULTILINE):
        return None
    lines = report.splitlines()
    found = [f"{lines[number - 1].strip().split(', total')[0]}: {line.strip()}"
             for number, line in enumerate(lines)
             if number and COUNTS.match(line) and re.search(r"[1-9]", line)]  # fmt: skip
    return "; ".join(found) or "pgBackRest's verify did not report ok"


class Archiving:
    def __init__(self, project: Project) -> None:
        self.project = project

    def repos(self) -> list[int]:
        return [LOCAL, REMOTE] if self.project.setting("OPS_BACKUP_REMOTE") else [LOCAL]

    # --- pgBackRest ---------------------------------------------------------------------------

    def pgbackrest(self, *args: str, what: str, check: bool = True):
        """pgBackRest in the running db container, as the postgres user, with the remote's
        settings (postgres/backup-run.sh)."""
        return self.project.run(
            commands.in_service_as("db", "postgres", "backup-run", "pgbackrest", *args),
            what=what, check=check, timeout=PGBACKREST_TIMEOUT_S,
        )  # fmt: skip

    def stanza(self) -> None:
        """The stanza in every repository (idempotent: a new remote gets it here)."""
        self.pgbackrest("stanza-create", what="pgBackRest's stanza-create")

    def backups(self, repo: int) -> list[dict]:
        info = json.loads(
            self.pgbackrest(
                "info", f"--repo={repo}", "--output=json", what="pgBackRest's info"
            ).stdout
        )
        return info[0].get("backup", []) if info else []

    def base_backup(self, repo: int, now: datetime.datetime) -> str:
        """A base backup into `repo`: full when its newest full one is older than FULL_EVERY (or
        there is none), differential otherwise; pgBackRest then expires what retention drops.
        Returns the backup's label and type."""
        fulls = [b for b in self.backups(repo) if b["type"] == "full"]
        newest_full = max((moment(b["timestamp"]["stop"]) for b in fulls), default=None)
        kind = "full" if newest_full is None or now - newest_full > FULL_EVERY else "diff"
        self.pgbackrest(
            "backup", f"--repo={repo}", f"--type={kind}",
            what=f"pgBackRest's {kind} backup to the {NAMES[repo]} repository",
        )  # fmt: skip
        label = max(self.backups(repo), key=lambda b: b["timestamp"]["stop"])["label"]
        return f"{label} ({kind})"

    def window(self, repo: int) -> Window:
        """What `repo` can restore; a repository that cannot be read (the remote away) is a
        window with nothing in it that says why, so the verbs go on with the others."""
        try:
            backups = self.backups(repo)
            listed = json.loads(
                self.pgbackrest(
                    "repo-ls", f"--repo={repo}", "--recurse", "--output=json",
                    "archive/catcollector", what=f"listing the {NAMES[repo]} repository's WAL",
                ).stdout
            )  # fmt: skip
        except OpsError as error:
            return Window(repo, None, None, 0, unreachable=error.evidence())
        oldest = min((moment(b["timestamp"]["stop"]) for b in backups), default=None)
        arrivals = [item["time"] for name, item in listed.items() if WAL_SEGMENT.search(f"/{name}")]
        newest = moment(max(arrivals)) if arrivals and oldest else None
        return Window(repo, oldest, newest, len(backups))

    def archiver(self) -> Archiver:
        row = self.project.run(
            commands.in_service("db", "sh", "-c", 'psql --no-psqlrc --tuples-only --no-align '
                                '--username="$POSTGRES_USER" --dbname=postgres '
                                f'--command="{ARCHIVER}"'),
            what="asking PostgreSQL's archiver",
        ).stdout.strip().split("|")  # fmt: skip
        values = [float(value) if value else None for value in [*row, "", "", ""][:4]]
        archived, failed, waiting, oldest = values
        return Archiver(moment(archived), moment(failed), int(waiting or 0), moment(oldest))

    def verify(self, repo: int) -> str | None:
        """Every base backup and WAL segment of `repo` read back against its checksum, and every
        byte of the photos' repository authenticated: None when whole, else what is wrong."""
        problems = []
        # pgBackRest's verify exits 0 whatever it finds: its report's status line says.
        checked = self.pgbackrest(
            "verify", f"--repo={repo}", "--output=text", "--verbose",
            what=f"verifying the {NAMES[repo]} repository", check=False,
        )  # fmt: skip
        if checked.returncode != 0:
            said = (checked.stderr or checked.stdout).strip().splitlines()
            problems.append(f"the database's copy: {said[-1] if said else 'damaged'}")
        elif problem := verify_problem(checked.stdout):
            problems.append(f"the database's copy: {problem}")
        photos = self.project.run(
            commands.one_off_with_profile("tools", "photos-restore", "check", NAMES[repo]),
            check=False, what=f"checking the {NAMES[repo]} photos", timeout=PGBACKREST_TIMEOUT_S,
        )  # fmt: skip
        if photos.returncode != 0:
            problems.append("the photos' copy does not read back (restic check)")
        return "; ".join(problems) or None

    # --- the restore check ---------------------------------------------------------------------

    def restore_point(self, name: str) -> dict:
        """A restore point in the WAL and every table's row count there (scripts/restore_point.py,
        in a one-off of the release's web image)."""
        answer = self.project.run(
            commands.one_off("web", *RESTORE_POINT, name), what="marking a restore point"
        ).stdout  # fmt: skip
        return json.loads(answer.strip().splitlines()[-1])

    def close_segment(self, lsn: str) -> str:
        """The WAL segment holding `lsn`, closed now so that it is archived at once."""
        if not re.fullmatch(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}", lsn):
            raise OpsError(f"{lsn!r} is not a WAL location")
        return self.project.run(
            commands.in_service("db", "sh", "-c", 'psql --no-psqlrc --tuples-only --no-align '
                                '--username="$POSTGRES_USER" --dbname=postgres --command="'
                                f"SELECT pg_walfile_name('{lsn}'), pg_switch_wal()\""),
            what="closing the WAL segment",
        ).stdout.strip().split("|")[0]  # fmt: skip

    def has_segment(self, repo: int, segment: str) -> bool:
        listed = json.loads(
            self.pgbackrest(
                "repo-ls", f"--repo={repo}", "--recurse", "--output=json", "archive/catcollector",
                f"--filter={segment}", what=f"listing the {NAMES[repo]} repository's WAL",
            ).stdout
        )  # fmt: skip
        return any(name.rsplit("/", 1)[-1].startswith(segment) for name in listed)

    def restored_counts(self, name: str) -> dict[str, int]:
        """This VM's newest base backup restored to the restore point `name` in a scratch
        database (postgres/restore-check.sh), and its tables' row counts."""
        try:
            answer = self.project.run(
                commands.one_off_with_profile("tools", "restore-check", name),
                what="restoring into the scratch database", timeout=PGBACKREST_TIMEOUT_S,
            ).stdout  # fmt: skip
        finally:
            # Its volume goes too: `compose down --volumes` leaves those of profile services.
            self.project.run(commands.volume_rm(f"{self.project.name()}_{SCRATCH_VOLUME}"),
                             check=False)  # fmt: skip
        return json.loads(answer.strip().splitlines()[-1])

    # --- restic (the photos) ----------------------------------------------------------------

    def photo_snapshots(self, repo: int) -> list[tuple[str, datetime.datetime]]:
        """(id, time) of each snapshot of the photos in `repo`, oldest first."""
        listed = self.project.run(
            commands.one_off_with_profile("tools", "photos-restore", "snapshots", NAMES[repo]),
            what=f"listing the {NAMES[repo]} repository's photo snapshots",
        ).stdout  # fmt: skip
        snapshots = json.loads(listed.strip().splitlines()[-1]) if listed.strip() else []
        return sorted(
            ((s["id"], datetime.datetime.fromisoformat(s["time"])) for s in snapshots or []),
            key=lambda snapshot: snapshot[1],
        )

    def forget_photos(self, repo: int, oldest: datetime.datetime, now: datetime.datetime) -> str:
        """Photo snapshots as far back as the database can be restored (`oldest`), a day more."""
        days = max((now - oldest).days, 0) + 2
        return self.project.run(
            commands.one_off_with_profile("tools", "photos-restore", "forget", NAMES[repo],
                                          str(days)),
            what=f"pruning the {NAMES[repo]} repository's photo snapshots",
            timeout=PGBACKREST_TIMEOUT_S,
        ).stdout.strip()  # fmt: skip

    def photos_copy_state(self) -> dict[int, str]:
        """The photos-backup service's last attempt per repository: `ok <time>` or `failed <time>
        <reason>`, as it wrote it; missing when the service does not run."""
        shown = self.project.run(
            commands.in_service("photos-backup", "sh", "-c",
                                "for f in local remote; do [ -f /tmp/photos-backup/$f ] && "
                                'echo "$f $(cat /tmp/photos-backup/$f)"; done; true'),
            check=False, what="asking photos-backup",
        )  # fmt: skip
        states = {}
        for line in shown.stdout.splitlines():
            name, _, state = line.partition(" ")
            repo = {v: k for k, v in NAMES.items()}.get(name)
            if repo is not None:
                states[repo] = state
        if shown.returncode != 0:
            raise OpsError("the photos-backup service does not run", shown.stderr.strip())
        return states
