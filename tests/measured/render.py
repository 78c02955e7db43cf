"""Measured tables: the runs' measurements read into markdown, and the docs' blocks they fill.

A cell is literal text or `Measured(measurement, reader)`: a reader turns the values of every
run of that measurement into text (`span`: a range, `each`: every distinct value, `text`:
several in a sentence).
Each table ends with a line naming how many measurements it shows, their dates, commits and
tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.harness import REPO

RUNS = REPO / "docs" / "measured" / "runs.jsonl"
DOCS = REPO / "docs"
BLOCK = re.compile(r"(<!-- measured: ([\w-]+) -->\n)(.*?)(<!-- measured: end -->)", re.DOTALL)

Values = dict
Reader = Callable[[list[Values]], str]


# --- reading the runs ---------------------------------------------------------------------


def load_runs(path: Path = RUNS) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def import_runs(source: Path, target: Path = RUNS) -> tuple[int, int]:
    """Append `source`'s lines of clean commits that `target` lacks: (added, dirty skipped)."""
    known = {json.dumps(entry, sort_keys=True) for entry in load_runs(target)}
    added, dirty = [], 0
    for entry in load_runs(source):
        if entry["commit"].endswith("+dirty") or entry["commit"] == "unknown":
            dirty += 1
            continue
        line = json.dumps(entry, sort_keys=True)
        if line not in known:
            known.add(line)
            added.append(line)
    if added:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a") as out:
            out.write("".join(f"{line}\n" for line in added))
    return len(added), dirty


# --- cells --------------------------------------------------------------------------------


def span(key: str, digits: int = 1, unit: str = "") -> Reader:
    """The range of `key` over the runs: '12.6 to 15.6 s', or one value."""

    def read(values: list[Values]) -> str:
        found = sorted(v[key] for v in values if v.get(key) is not None)
        if not found:
            return "not measured"
        low, high = f"{found[0]:,.{digits}f}", f"{found[-1]:,.{digits}f}"
        text = low if low == high else f"{low} to {high}"
        return f"{text}{unit}"

    return read


def each(key: str, render: Callable[[object], str] = str) -> Reader:
    """Every run's value of `key`, in order, when a range would say nothing (lists, text)."""

    def read(values: list[Values]) -> str:
        seen: list[str] = []
        for v in values:
            if key in v and render(v[key]) not in seen:
                seen.append(render(v[key]))
        return "; ".join(seen) or "not measured"

    return read


def text(template: str, **readers: Reader) -> Reader:
    """`template` with each {name} replaced by its reader's text."""

    def read(values: list[Values]) -> str:
        return template.format(**{name: reader(values) for name, reader in readers.items()})

    return read


@dataclass(frozen=True)
class Measured:
    """A cell read from the runs of one measurement."""

    measurement: str
    read: Reader


Cell = str | Measured


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    # Right-aligned columns (numbers), by index.
    numeric: tuple[int, ...] = ()

    def measurements(self) -> list[str]:
        return [c.measurement for row in self.rows for c in row if isinstance(c, Measured)]


def render(table: Table, runs: list[dict]) -> str:
    by_name: dict[str, list[dict]] = {}
    for entry in runs:
        by_name.setdefault(entry["measurement"], []).append(entry)
    used: dict[int, dict] = {}
    lines = ["| " + " | ".join(table.header) + " |"]
    lines.append(
        "|" + "|".join("---:" if i in table.numeric else "---" for i in range(len(table.header)))
        + "|"
    )  # fmt: skip
    for row in table.rows:
        cells = []
        for cell in row:
            if isinstance(cell, Measured):
                entries = by_name.get(cell.measurement, [])
                used.update((id(entry), entry) for entry in entries)
                cells.append(cell.read([e["values"] for e in entries]))
            else:
                cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", provenance(list(used.values()))]
    return "\n".join(lines) + "\n"


def provenance(entries: list[dict]) -> str:
    if not entries:
        return "Not measured yet: `python -m tests.measured` fills this table after a run."
    runs = {(e["commit"], e["date"]) for e in entries}
    dates = sorted({date for _, date in runs})
    # By the day each was last measured, then in the order the runs were kept (the file's):
    # the same file always gives the same text.
    order = list(dict.fromkeys(e["commit"] for e in entries))
    commits = sorted(order, key=lambda c: (max(date for commit, date in runs if commit == c),
                                           order.index(c)))  # fmt: skip
    tests = sorted({e["test"].split("::")[0] for e in entries})
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    return (
        f"Generated by `python -m tests.measured` from {len(entries)} measurements of passing "
        f"runs ({when}; commits {', '.join(f'`{c}`' for c in commits)}) of "
        f"{', '.join(f'`{t}`' for t in tests)}."
    )


# --- the documents ------------------------------------------------------------------------


def blocks(text: str) -> Iterable[re.Match[str]]:
    return BLOCK.finditer(text)


class UnknownTable(ValueError):
    pass


def rewritten(text: str, runs: list[dict], tables: dict[str, Table], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in tables:
            raise UnknownTable(f"{where}: no measured table {name!r} in tests/measured/tables.py")
        return match.group(1) + render(tables[name], runs) + match.group(4)

    return BLOCK.sub(replace, text)


def documents() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def differences(runs: list[dict], tables: dict[str, Table]) -> list[str]:
    """The documents whose measured blocks differ from what the runs give."""
    return [
        str(path.relative_to(REPO))
        for path in documents()
        if rewritten(path.read_text(), runs, tables, str(path)) != path.read_text()
    ]
