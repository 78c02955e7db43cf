"""What was deployed here, in order: `.ops/history`, one line per deploy or rollback (time, app
version, proxy version). Rollback reads its previous entry; retention keeps the images and
releases of the newest OPS_KEEP_VERSIONS entries. And what was undone: `.ops/rollbacks`, one
line per deploy rolled back, which monitoring counts (tools/ops/metrics.py)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    time: str
    app: str
    proxy: str


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime(TIME_FORMAT)


def timestamp(time: str) -> float:
    """Unix time of an entry's time."""
    parsed = datetime.datetime.strptime(time, TIME_FORMAT)
    return parsed.replace(tzinfo=datetime.timezone.utc).timestamp()


class History:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "history"

    def entries(self) -> list[Entry]:
        if not self.path.exists():
            return []
        found = []
        for line in self.path.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) == 3:
                found.append(Entry(*fields))
        return found

    def append(self, app: str, proxy: str) -> None:
        self.path.parent.mkdir(exist_ok=True)
        with self.path.open("a") as out:
            out.write(f"{now()}\t{app}\t{proxy}\n")

    def previous(self, current: str) -> Entry | None:
        """The newest entry of another version than `current`."""
        for entry in reversed(self.entries()):
            if entry.app != current:
                return entry
        return None

    def latest_of(self, app: str) -> Entry | None:
        for entry in reversed(self.entries()):
            if entry.app == app:
                return entry
        return None

    def kept(self, count: int) -> list[Entry]:
        """The newest entry of each of the `count` most recently deployed versions."""
        kept: list[Entry] = []
        for entry in reversed(self.entries()):
            if all(entry.app != seen.app for seen in kept):
                kept.append(entry)
            if len(kept) == count:
                break
        return kept


class Rollbacks:
    """Deploys undone: by ./ops deploy itself when the new release failed, and by ./ops
    rollback. One line each: time, the release undone, the release serving again, how."""

    DEPLOY_UNDONE, ROLLBACK = "deploy undone", "rollback"

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "rollbacks"

    def append(self, undone: str, serving: str, how: str) -> None:
        self.path.parent.mkdir(exist_ok=True)
        with self.path.open("a") as out:
            out.write(f"{now()}\t{undone}\t{serving}\t{how}\n")

    def count(self) -> int:
        if not self.path.exists():
            return 0
        return sum(1 for line in self.path.read_text().splitlines() if line.count("\t") == 3)
