"""The restore check, the last step of ./ops backup: proof that this VM's archive restores, made
every time the schedule backs up (docs/operations.md, Backups).

A restore point is marked with every table's row count at exactly that point (while the site
writes); its WAL segment is closed and awaited in this VM's repository; the newest base backup is
restored to that point in a scratch database, whose row counts must be the same, table for table.
The result is written to .ops/restore-check.json whatever it is, for ./ops backups and for
monitoring; a failed check fails the backup.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path

from tools.ops.archiving import (
    LOCAL,
    POINT_ARCHIVED_TIMEOUT_S,
    RESTORE_CHECK_FILE,
    Archiving,
    shown,
)
from tools.ops.console import Console, OpsError
from tools.ops.project import Project

POLL_S = 1


def result_path(project: Project) -> Path:
    return project.state_dir / RESTORE_CHECK_FILE


def last_result(project: Project) -> dict | None:
    """The newest check's result, None when none ran here."""
    try:
        return json.loads(result_path(project).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise OpsError(f"{result_path(project)} cannot be read: {error}") from None


def differences(expected: dict[str, int], restored: dict[str, int]) -> list[str]:
    """Each table whose count differs, or that only one side has."""
    return [
        f"{table}: {expected.get(table, 'no table')} at the point, "
        f"{restored.get(table, 'no table')} restored"
        for table in sorted(expected.keys() | restored.keys())
        if expected.get(table) != restored.get(table)
    ]


class RestoreCheck:
    def __init__(self, project: Project, console: Console) -> None:
        self.project = project
        self.console = console
        self.archiving = Archiving(project)

    def wait_archived(self, segment: str) -> None:
        deadline = time.monotonic() + POINT_ARCHIVED_TIMEOUT_S
        while not self.archiving.has_segment(LOCAL, segment):
            if time.monotonic() > deadline:
                raise OpsError(f"WAL segment {segment} did not reach this VM's repository within "
                               f"{POINT_ARCHIVED_TIMEOUT_S} s: archiving is behind (./ops "
                               "backups)")  # fmt: skip
            time.sleep(POLL_S)

    def compare(self, name: str) -> tuple[dict[str, int], str | None]:
        point = self.archiving.restore_point(name)
        expected = point["counts"]
        self.console.note(f"restore point {name} at {point['lsn']}: {len(expected)} tables, "
                          f"{sum(expected.values())} rows")  # fmt: skip
        self.wait_archived(self.archiving.close_segment(point["lsn"]))
        restored = self.archiving.restored_counts(name)
        wrong = differences(expected, restored)
        return expected, "; ".join(wrong) or None

    def run(self) -> str:
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        name = f"ops-restore-check-{now:%Y%m%dT%H%M%SZ}"
        started = time.monotonic()
        expected: dict[str, int] = {}
        details = ""
        try:
            expected, problem = self.compare(name)
        except OpsError as error:
            # The file gets the reason and its last line of evidence; the verb prints them all.
            problem, details = str(error), error.details
            if details:
                problem = f"{problem}: {error.evidence()}"
        seconds = round(time.monotonic() - started, 1)
        self.write({
            "time": shown(now), "ok": problem is None, "restore_point": name,
            "tables": len(expected), "rows": sum(expected.values()), "seconds": seconds,
            "problem": problem,
        })  # fmt: skip
        if problem:
            raise OpsError(f"the restore check failed: {problem}", details)
        return (f"restored into a scratch database in {seconds:.0f} s: {len(expected)} tables, "
                f"{sum(expected.values())} rows, every count as at the point")  # fmt: skip

    def write(self, result: dict) -> None:
        path = result_path(self.project)
        path.parent.mkdir(exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(result) + "\n")
        os.replace(partial, path)


def shown_result(result: dict | None) -> tuple[bool, str]:
    """(passed, the line ./ops backups prints) for the newest check's result."""
    if result is None:
        return True, "restore check: none yet (./ops backup runs one)"
    if result["ok"]:
        return True, (f"restore check: passed at {result['time']} ({result['tables']} tables, "
                      f"{result['rows']} rows, {result['seconds']:.0f} s)")  # fmt: skip
    return False, f"restore check: FAILED at {result['time']}: {result['problem']}"
