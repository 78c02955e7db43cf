"""Numbers a test measures, kept only when the test passes, with the commit they were taken at.

    record("deploy a to b", {"requests": 1523, "failed": 0, "seconds": 13.1})

`record` holds the values until the test ends; the layers' report hooks (the engine plugin,
tests/unit/conftest.py) hand each phase's report to `settle`, which appends one JSON line to
ARTIFACT per value recorded by a test that passed, and drops what a failing one recorded, so a
failing run never feeds a published range. Each line holds the measurement's
name, its values, the test, the commit (with `+dirty` when the checkout had uncommitted changes)
and the UTC date. docs/ quote these lines only through `python -m tests.measured`, which copies
them into docs/measured/runs.jsonl and writes the docs' measured tables from that file.
"""

from __future__ import annotations

import datetime
import functools
import json
import subprocess
import sys

from tests.harness import REPO

ARTIFACT = REPO / "tests" / "artifacts" / "measurements.jsonl"

_pending: list[dict] = []


def record(name: str, values: dict) -> None:
    _pending.append({"measurement": name, "values": values})


@functools.cache
def commit() -> str:
    """The checkout's commit, `+dirty` when tracked files differ from it; `unknown` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=7", "HEAD"], cwd=REPO, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if changed else head


def settle(test: str, phase: str, passed: bool) -> None:
    """After a test's phase: a passed call keeps what it recorded; anything else drops it (a
    failure, or values recorded in setup or teardown, which belong to no test's result)."""
    if phase == "call" and passed:
        keep(test)
    elif not passed or phase == "teardown":
        drop()


def keep(test: str) -> int:
    """Write what the passing `test` recorded; returns how many lines."""
    if not _pending:
        return 0
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    with ARTIFACT.open("a") as out:
        for entry in _pending:
            line = {**entry, "test": test, "commit": commit(), "date": date}
            out.write(json.dumps(line, sort_keys=True) + "\n")
    count = len(_pending)
    _pending.clear()
    return count


def drop() -> None:
    _pending.clear()


def main(argv: list[str]) -> None:
    """`python -m tests.harness.measurements NAME PHASE=SECONDS...`: what tests/run measured of
    a whole run that passed, kept like a passing test's measurement."""
    name, *phases = argv
    record(name, {phase: float(seconds) for phase, seconds in (p.rsplit("=", 1) for p in phases)})
    keep("tests/run")


if __name__ == "__main__":
    main(sys.argv[1:])
