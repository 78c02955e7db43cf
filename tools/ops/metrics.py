"""metrics: what only the VM knows, for Prometheus, as a file of node-exporter's textfile
collector (OPS_METRICS_DIR, which compose.monitoring.yaml mounts into it). The metrics are the
contract of docs/operations.md, Monitoring, "Facts from the VM": FAMILIES below, which a unit
test keeps equal to that table. The timer ./ops schedule installs runs this every minute.

The steps, each one kind of fact:
  check       the folder (it must exist and be writable), and whether the monitoring set runs
              at all: without compose.monitoring.yaml nothing reads the file, and nothing is
              written
  status      ./ops status's verdict, from the same reading (0 healthy ... 3 unknown)
  containers  each container's restarts (Docker's count) and, for the running ones, memory as
              its limit counts it, the limit, the processes killed for memory and the CPU time
              used (its cgroup: tools/ops/cgroups.py)
  backups     the newest good archive's time, as ./ops backups finds them (structure and
              manifest checked, not every checksum: this runs every minute)
  restore check  the last restore check's result and time, as ./ops backup left it in
              .ops/restore-check.json
  archive     how long the oldest WAL segment has waited to be archived, when PostgreSQL
              archives at all (archive_mode): a segment that fails to archive waits
  photos      whether the photos' last copy to each repository succeeded, as the photos-backup
              service says (0 too when it does not run: nothing is copied)
  deploys     the last deploy's time (.ops/history) and the deploys undone (.ops/rollbacks)
  write       the file, written beside and renamed, so node-exporter never reads half of one
A fact that cannot be read is left out and the rest is written; the verb then exits 1 with the
first reason, at its step.

The text format is written here by hand rather than with prometheus_client's
write_to_textfile: ./ops runs on the VM with Python's standard library alone.
"""

from __future__ import annotations

import datetime
import os
import pwd
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tools.ops import status as reporting
from tools.ops.archiving import NAMES, TIME_FORMAT, Archiving
from tools.ops.backup import Store, human_age
from tools.ops.cgroups import CgroupError, container_usage
from tools.ops.console import Console, OpsError
from tools.ops.data import Data
from tools.ops.history import History, Rollbacks, timestamp
from tools.ops.project import Project
from tools.ops.restore_check import last_result

STEPS = (
    "check", "status", "containers", "backups", "restore check", "archive", "photos", "deploys",
    "write",
)  # fmt: skip
# The steps that read, each a method of Reading.
READ_STEPS = {
    "status": "status", "containers": "containers", "backups": "backups",
    "restore check": "restore_check", "archive": "archive", "photos": "photos",
    "deploys": "deploys",
}  # fmt: skip
DEFAULT_DIR = "/var/lib/catcollector/metrics"
# The service whose presence says the monitoring set runs (compose.monitoring.yaml).
READER = "node-exporter"
# The service that copies the photos (compose.yaml; none with an external database).
PHOTOS_COPY = "photos-backup"
FILE_MODE = 0o644
# Seconds the oldest WAL segment waiting to be archived has waited: empty when PostgreSQL does
# not archive (archive_mode off), 0 when none waits.
ARCHIVE_LAG = (
    "SELECT CASE WHEN current_setting('archive_mode') = 'off' THEN NULL ELSE "
    "coalesce((SELECT extract(epoch FROM now() - min(modification)) "
    "FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'), 0) END"
)


@dataclass(frozen=True)
class Family:
    name: str
    kind: str
    labels: tuple[str, ...]
    help: str


CONTAINER = ("service", "container")
FAMILIES = {
    family.name: family
    for family in (
        Family("catcollector_status", "gauge", (),
               "./ops status's verdict: 0 healthy, 1 degraded, 2 down, 3 unknown"),
        Family("catcollector_metrics_step_ok", "gauge", ("step",),
               "1 when ./ops metrics read the step's facts, 0 when it could not (they are left "
               "out, and so is what their alerts read)"),
        Family("catcollector_backup_newest_timestamp_seconds", "gauge", (),
               "Unix time of the newest good archive of ./ops backup, 0 when there is none"),
        Family("catcollector_restore_check_ok", "gauge", (),
               "1 when ./ops backup's last restore check passed, 0 when it failed"),
        Family("catcollector_restore_check_timestamp_seconds", "gauge", (),
               "Unix time of ./ops backup's last restore check"),
        Family("catcollector_archive_lag_seconds", "gauge", (),
               "Seconds the oldest WAL segment not yet archived has waited"),
        Family("catcollector_photos_copy_ok", "gauge", ("repository",),
               "1 when the photos' last copy to the repository succeeded, 0 when it failed or "
               "photos-backup does not run"),
        Family("catcollector_container_restarts_total", "counter", CONTAINER,
               "Restarts Docker made of the container"),
        Family("catcollector_container_oom_kills_total", "counter", CONTAINER,
               "Processes the kernel killed for memory in the container"),
        Family("catcollector_container_memory_bytes", "gauge", CONTAINER,
               "Memory the container uses as its limit counts it"),
        Family("catcollector_container_memory_limit_bytes", "gauge", CONTAINER,
               "The container's memory limit"),
        Family("catcollector_container_cpu_seconds_total", "counter", CONTAINER,
               "CPU time the container's processes used"),
        Family("catcollector_deploy_rolled_back_total", "counter", (),
               "Deploys undone: by ./ops deploy when the new release failed, and by rollback"),
        Family("catcollector_last_deploy_timestamp_seconds", "gauge", (),
               "Unix time the last ./ops deploy or rollback finished"),
    )
}  # fmt: skip


@dataclass
class Facts:
    """The samples read so far, by family, and what could not be read (step, reason)."""

    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, value: float, **labels: str) -> None:
        self.samples.setdefault(name, []).append((labels, value))

    def count(self) -> int:
        return sum(len(samples) for samples in self.samples.values())


def _escape(text: str, quote: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def _value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def exposition(facts: Facts) -> str:
    """Prometheus' text format (0.0.4): each family read, in FAMILIES' order."""
    lines = []
    for name, family in FAMILIES.items():
        if name not in facts.samples:
            continue
        lines += [f"# HELP {name} {_escape(family.help, False)}", f"# TYPE {name} {family.kind}"]
        for labels, value in facts.samples[name]:
            pairs = ",".join(f'{key}="{_escape(text, True)}"' for key, text in labels.items())
            lines.append(
                f"{name}{{{pairs}}} {_value(value)}" if pairs else f"{name} {_value(value)}"
            )
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Written beside under a name the collector ignores (not *.prom), then renamed."""
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(partial, FILE_MODE)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def folder(project: Project) -> Path:
    """OPS_METRICS_DIR, relative to the project folder as compose reads it."""
    return (project.directory / project.setting("OPS_METRICS_DIR", DEFAULT_DIR)).resolve()


def check_folder(path: Path) -> None:
    user = pwd.getpwuid(os.geteuid()).pw_name
    if not path.is_dir():
        raise OpsError(f"OPS_METRICS_DIR {path} does not exist; sudo ./ops schedule makes it, "
                       "owned by the project folder's owner")  # fmt: skip
    if not os.access(path, os.W_OK | os.X_OK):
        raise OpsError(f"OPS_METRICS_DIR {path} is not writable by {user}: sudo chown {user} "
                       f"{path}")  # fmt: skip


class Reading:
    def __init__(self, project: Project, console: Console) -> None:
        self.project = project
        self.console = console
        self.facts = Facts()
        self.now = datetime.datetime.now(datetime.timezone.utc)

    def status(self) -> None:
        try:
            report = reporting.read(self.project, None)
        except OpsError as error:
            self.facts.add("catcollector_status", reporting.UNKNOWN)
            raise OpsError(f"status unknown: {error}") from None
        self.facts.add("catcollector_status", report.code)
        problems = f": {'; '.join(report.problems)}" if report.problems else ""
        self.console.note(f"{report.verdict}{problems}")

    def containers(self) -> None:
        unread = []
        containers = self.project.all_containers()
        for container in containers:
            labels = {"service": container.service, "container": container.name}
            self.facts.add("catcollector_container_restarts_total", container.restarts, **labels)
            if not container.pid:
                continue
            try:
                usage = container_usage(container.pid, container.id)
            except CgroupError as error:
                unread.append(f"{container.name}: {error}")
                continue
            memory = usage.memory
            self.facts.add("catcollector_container_cpu_seconds_total", usage.cpu_seconds,
                           **labels)  # fmt: skip
            # Docker's flag is set by any kill in the container, the cgroup's count included:
            # at least one, not one more.
            kills = max(memory.oom_kills, 1 if container.oom_killed else 0)
            self.facts.add("catcollector_container_oom_kills_total", kills, **labels)
            self.facts.add("catcollector_container_memory_bytes", memory.used, **labels)
            if memory.limit is not None:
                self.facts.add("catcollector_container_memory_limit_bytes", memory.limit,
                               **labels)  # fmt: skip
        self.console.note(f"{len(containers)} containers, "
                          f"{sum(1 for c in containers if c.pid)} running")  # fmt: skip
        if unread:
            raise OpsError(f"cannot read the usage of {len(unread)} container(s) from their "
                           f"cgroups: {unread[0]}")  # fmt: skip

    def backups(self) -> None:
        if not self.project.has_service("db"):
            self.console.note("no db service (an external database): its provider's backups")
            return
        store = Store(self.project, self.project.name())
        try:
            good = [entry for entry in store.entries(checksums=False) if entry.good]
        except OSError as error:
            raise OpsError(f"cannot read the archives in {store.directory}: {error}") from None
        newest = good[-1].time.timestamp() if good else 0
        self.facts.add("catcollector_backup_newest_timestamp_seconds", newest)
        age = human_age((self.now - good[-1].time).total_seconds()) + " old" if good else "none"
        self.console.note(f"newest good archive in {store.directory}: {age}")

    def restore_check(self) -> None:
        if not self.project.has_service("db"):
            self.console.note("no db service (an external database): no restore check")
            return
        result = last_result(self.project)
        if result is None:
            self.console.note("no restore check has run here yet (./ops backup runs one)")
            return
        self.facts.add("catcollector_restore_check_ok", 1 if result.get("ok") else 0)
        try:
            when = datetime.datetime.strptime(result["time"], TIME_FORMAT)
        except (KeyError, TypeError, ValueError):
            raise OpsError(f"the restore check's result has no time: {result!r}") from None
        self.facts.add("catcollector_restore_check_timestamp_seconds",
                       when.replace(tzinfo=datetime.timezone.utc).timestamp())  # fmt: skip
        verdict = "passed" if result.get("ok") else f"FAILED: {result.get('problem')}"
        self.console.note(f"the last restore check, at {result['time']}: {verdict}")

    def archive(self) -> None:
        running = self.project.has_service("db") and any(
            c.state == "running" for c in self.project.containers("db")
        )
        if not running:
            self.console.note("the db service is not running: no archiving to read")
            return
        lag = Data(self.project).psql(ARCHIVE_LAG, what="asking PostgreSQL's archiver")
        if not lag:
            self.console.note("PostgreSQL does not archive its WAL (archive_mode off)")
            return
        self.facts.add("catcollector_archive_lag_seconds", float(lag))
        self.console.note(f"the oldest WAL segment waiting has waited {float(lag):.0f} s")

    def photos(self) -> None:
        if not self.project.has_service(PHOTOS_COPY):
            self.console.note("no photos-backup service (an external database): no photos' copy")
            return
        archiving = Archiving(self.project)
        running = any(c.state == "running" for c in self.project.containers(PHOTOS_COPY))
        if not running:
            for repo in archiving.repos():
                self.facts.add("catcollector_photos_copy_ok", 0, repository=NAMES[repo])
            self.console.note("photos-backup does not run: the photos are not being copied")
            return
        states = archiving.photos_copy_state()
        for repo in archiving.repos():
            state = states.get(repo)
            if state is None:
                # Its first copy since it started is still under way.
                continue
            ok = state.startswith("ok")
            self.facts.add("catcollector_photos_copy_ok", 1 if ok else 0,
                           repository=NAMES[repo])  # fmt: skip
            shown = "ok" if ok else f"FAILED: {state.split(' ', 2)[-1]}"
            self.console.note(f"the photos' {NAMES[repo]} copy: {shown}")

    def deploys(self) -> None:
        entries = History(self.project.state_dir).entries()
        if entries:
            self.facts.add("catcollector_last_deploy_timestamp_seconds",
                           timestamp(entries[-1].time))  # fmt: skip
        undone = Rollbacks(self.project.state_dir).count()
        self.facts.add("catcollector_deploy_rolled_back_total", undone)
        last = f"{entries[-1].app} at {entries[-1].time}" if entries else "none recorded"
        self.console.note(f"last deploy: {last}; deploys undone: {undone}")


def metrics(project: Project, console: Console) -> str:
    with console.step("check"):
        target = folder(project)
        if not project.has_service(READER):
            files = project.relative_list(project.compose_files())
            console.note(f"the compose files in use ({files}) have no monitoring set "
                         "(compose.monitoring.yaml)")  # fmt: skip
            return "nothing written: nothing would read it"
        check_folder(target)
    reading = Reading(project, console)
    for step, method in READ_STEPS.items():
        with console.step(step):
            try:
                getattr(reading, method)()
            except OpsError as error:
                reading.facts.problems.append((step, str(error)))
            failed = any(problem == step for problem, _ in reading.facts.problems)
            reading.facts.add("catcollector_metrics_step_ok", 0 if failed else 1, step=step)
    path = target / f"{project.name()}.prom"
    with console.step("write"):
        write_atomically(path, exposition(reading.facts))
    written = f"{reading.facts.count()} samples in {path}"
    if reading.facts.problems:
        step, reason = reading.facts.problems[0]
        console.current = step
        raise OpsError(f"{reason} (the other facts are in {path})")
    return written
