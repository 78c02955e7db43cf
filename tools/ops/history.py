"""What was deployed here, in order: `.ops/history`, one line per deploy or rollback (time, app
version, proxy version). Rollback reads its previous entry; retention keeps the images and
releases of the newest OPS_KEEP_VERSIONS entries."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    time: str
    app: str
    proxy: str


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
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self.path.open("a") as out:
            out.write(f"{now}\t{app}\t{proxy}\n")

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
