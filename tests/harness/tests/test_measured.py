"""docs/' measured tables are what tests/measured writes from docs/measured/runs.jsonl: a number
in them is measured again or changed in tests/measured/tables.py, never edited by hand."""

import json

from tests.measured.__main__ import main
from tests.measured.render import Measured, Table, import_runs, render, span, text
from tests.measured.tables import RUN_TABLE, TABLES


def test_every_measured_table_in_docs_matches_the_runs(capsys):
    assert main(["check"]) == 0, capsys.readouterr().err


def test_every_table_is_used_in_docs_and_every_measurement_was_taken():
    from tests.measured.render import BLOCK, documents, load_runs  # noqa: PLC0415

    used = {m.group(2) for path in documents() for m in BLOCK.finditer(path.read_text())}
    assert used == set(TABLES), f"tables without a block: {set(TABLES) - used}"
    taken = {entry["measurement"] for entry in load_runs()}
    for name, table in TABLES.items():
        if name == RUN_TABLE:
            # tests/run keeps it once every layer passed: this one included, so it cannot wait.
            continue
        missing = set(table.measurements()) - taken
        assert not missing, f"{name}: never measured (renamed in a test?): {missing}"


def entry(measurement: str, commit: str, **values) -> dict:
    return {"measurement": measurement, "values": values, "commit": commit, "date": "2026-12-05",
            "test": "tests/ops/test_deploy.py::test_x"}  # fmt: skip


def test_a_cell_is_the_range_over_the_runs_and_the_table_names_them():
    table = Table(
        header=("what", "seconds"),
        rows=(("deploy", Measured("d", text("{s}", s=span("seconds", 1, " s")))),),
    )
    runs = [entry("d", "aaaaaaa", seconds=12.64), entry("d", "bbbbbbb", seconds=15.6)]
    rendered = render(table, runs)
    assert "| deploy | 12.6 to 15.6 s |" in rendered
    assert "2 measurements" in rendered
    assert "`aaaaaaa`" in rendered
    assert "`bbbbbbb`" in rendered


def test_import_takes_clean_commits_only_once(tmp_path):
    source, target = tmp_path / "artifact.jsonl", tmp_path / "runs.jsonl"
    lines = [entry("d", "aaaaaaa", seconds=1.0), entry("d", "bbbbbbb+dirty", seconds=2.0)]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert import_runs(source, target) == (1, 1)
    assert import_runs(source, target) == (0, 1)
    assert [json.loads(line)["commit"] for line in target.read_text().splitlines()] == ["aaaaaaa"]
