"""The measured tables of docs/, written from the measurements of passing test runs.

    python -m tests.measured import [FILE]   # add a run's measurements (default: the artifact)
    python -m tests.measured write           # rewrite every measured table in docs/
    python -m tests.measured check           # exit 1 if a table differs from what write makes

Tests record numbers with tests.harness.measurements.record; only tests that passed keep them,
in tests/artifacts/measurements.jsonl, each with its commit and date. `import` copies the lines
of clean commits (never `+dirty` ones) into RUNS, the file docs/ quote; `write` renders each
table below from RUNS into the docs' blocks

    <!-- measured: NAME -->
    ...
    <!-- measured: end -->

as a range over the runs ("12.6 to 15.6"), with a line naming how many runs, their dates and
commits. A number in a measured table is edited here or measured again, never by hand: the
unit layer runs `check` (tests/harness/tests/test_measured.py); the tables are declared in
tests/measured/tables.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.harness import REPO
from tests.harness.measurements import ARTIFACT
from tests.measured.render import RUNS, differences, documents, import_runs, load_runs, rewritten
from tests.measured.tables import TABLES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.measured", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    importing = verbs.add_parser("import", help="add a run's measurements to docs/measured")
    importing.add_argument("source", nargs="?", type=Path, default=ARTIFACT)
    verbs.add_parser("write", help="rewrite the measured tables in docs/")
    verbs.add_parser("check", help="exit 1 if a measured table differs from the runs")
    args = parser.parse_args(argv)
    if args.verb == "import":
        if not args.source.exists():
            print(f"{args.source}: no measurements (run the engine layers first)", file=sys.stderr)
            return 1
        added, dirty = import_runs(args.source)
        print(f"{added} measurement(s) added to {RUNS.relative_to(REPO)}; "
              f"{dirty} from uncommitted changes skipped")  # fmt: skip
        return 0
    runs = load_runs()
    if args.verb == "check":
        stale = differences(runs, TABLES)
        for path in stale:
            print(f"{path}: measured tables differ from {RUNS.relative_to(REPO)}; "
                  "run python -m tests.measured write", file=sys.stderr)  # fmt: skip
        return 1 if stale else 0
    for path in documents():
        text = path.read_text()
        new = rewritten(text, runs, TABLES, str(path))
        if new != text:
            path.write_text(new)
            print(f"rewrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
