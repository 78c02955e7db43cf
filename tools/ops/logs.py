"""logs SERVICE: what a service wrote, the retired releases' containers included.

Docker removes a container's log with the container, and a deploy removes the previous
release's containers: the minutes before a bad deploy would be gone just when they are wanted.
So a deploy keeps each container it retires (web, worker) as a compressed file in .ops/logs/
before removing it; `./ops logs SERVICE` prints those, oldest first, then the running
containers' own. Bounded: a container's log is already capped by Docker's rotation
(`x-hardened` in compose.yaml); the files of versions no longer kept (OPS_KEEP_VERSIONS, the
same rule as images) and those older than KEPT_DAYS are removed at each deploy's record step.
"""

from __future__ import annotations

import datetime
import gzip
import re
from collections.abc import Iterable
from pathlib import Path

from tools.ops import commands
from tools.ops.console import Console, OpsError
from tools.ops.project import Container, Project

STEPS = ("retired", "running")
KEPT_DAYS = 30
LOGS_DIR = "logs"
RETIRED_SERVICES = ("web", "worker")
SINCE = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z")


def folder(project: Project) -> Path:
    return project.state_dir / LOGS_DIR


def file_name(when: datetime.datetime, container: Container) -> str:
    """<UTC time>_<service>_<version>_<container>.log.gz: sorts by time, says what it holds."""
    return f"{when:%Y%m%dT%H%M%SZ}_{container.service}_{container.version}_{container.name}.log.gz"


def keep(project: Project, containers: Iterable[Container]) -> list[Path]:
    """Save each container's whole log (with Docker's timestamps) before it is removed."""
    target = folder(project)
    target.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    saved = []
    for container in containers:
        result = project.run(commands.logs(container.id, timestamps=True), check=False)
        path = target / file_name(now, container)
        with gzip.open(path, "wt") as out:
            out.write(result.stdout + result.stderr)
        saved.append(path)
    return saved


def prune(project: Project, kept_versions: Iterable[str]) -> int:
    """Remove saved logs of versions not kept, and any older than KEPT_DAYS."""
    kept = set(kept_versions)
    oldest = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=KEPT_DAYS)
    removed = 0
    for path, when, _, version in saved_files(project):
        if version not in kept or when < oldest:
            path.unlink()
            removed += 1
    return removed


def saved_files(project: Project) -> list[tuple[Path, datetime.datetime, str, str]]:
    """(path, time, service, version) of every saved log, oldest first."""
    found = []
    target = folder(project)
    for path in sorted(target.glob("*.log.gz")) if target.is_dir() else []:
        parts = path.name.removesuffix(".log.gz").split("_", 3)
        if len(parts) != 4:
            continue
        when = datetime.datetime.strptime(parts[0], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
        found.append((path, when, parts[1], parts[2]))
    return found


def parse_since(text: str) -> datetime.timedelta:
    match = SINCE.match(text)
    if not match:
        raise OpsError(f"--since {text!r}: use a number and a unit, e.g. 30m, 2h or 1d")
    return datetime.timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])


def logs(project: Project, console: Console, service: str, since: str | None) -> str:
    """Print the saved logs of `service`'s retired containers, then its running ones'."""
    if not project.has_service(service):
        services = ", ".join(project.config()["services"])
        raise OpsError(f"no service {service!r} in this stack; its services: {services}")
    cutoff = datetime.datetime.now(datetime.timezone.utc) - parse_since(since) if since else None
    printed = 0
    with console.step("retired"):
        for path, _, saved_service, version in saved_files(project):
            if saved_service != service:
                continue
            with gzip.open(path, "rt") as saved:
                lines = [
                    line for line in saved.read().splitlines()
                    if cutoff is None or _stamp(line) >= cutoff
                ]  # fmt: skip
            if lines:
                console.note(f"--- {path.name} (release {version}, retired)")
                print("\n".join(lines), flush=True)
                printed += len(lines)
    with console.step("running"):
        args = ["logs", "--no-color", "--timestamps", *(["--since", since] if since else [])]
        result = project.run(
            commands.compose(*args, service), what=f"docker compose logs {service}"
        )
        print(result.stdout, end="", flush=True)
        running = len(result.stdout.splitlines())
    return f"{service}: {printed} line(s) of retired containers, {running} of running ones"


def _stamp(line: str) -> datetime.datetime:
    """The time Docker put in front of a log line (RFC 3339, up to nanoseconds)."""
    match = STAMP.match(line)
    if not match:
        return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    fraction = (match.group(2) or "0")[:6].ljust(6, "0")
    return datetime.datetime.fromisoformat(f"{match.group(1)}.{fraction}+00:00")
