"""The continuous archive's pieces that need no engine: how OPS_BACKUP_REMOTE is read (and
refused), the moments restore --time takes, what a repository's window holds, when the archiver
is behind, and how the restore check compares and reports. The verbs themselves run against
the real engine, with a real SFTP server, in tests/ops/test_archiving.py."""

import datetime
import subprocess
from pathlib import Path

import pytest

from tools.ops.archiving import Archiver, Window, verify_problem
from tools.ops.console import OpsError
from tools.ops.pitr import parse_moment, pgbackrest_time
from tools.ops.restore_check import differences, shown_result

BACKUP_ENV = Path(__file__).resolve().parents[2] / "postgres" / "backup-env.sh"
UTC = datetime.UTC
NOON = datetime.datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def parsed(remote: str) -> subprocess.CompletedProcess[str]:
    """backup-env's reading of OPS_BACKUP_REMOTE, as the db image's entrypoint does it."""
    script = (f". {BACKUP_ENV}; backup_parse_remote; "
              'echo "$remote_user|$remote_host|$remote_port|$remote_path"')  # fmt: skip
    return subprocess.run(
        ["sh", "-c", script], env={"OPS_BACKUP_REMOTE": remote, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False, timeout=10,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("remote", "parts"),
    [
        (
            "sftp://offsite@backup.example.net/srv/backups",
            "offsite|backup.example.net|22|/srv/backups",
        ),
        ("sftp://ops_1@10.0.0.7:2222/repo", "ops_1|10.0.0.7|2222|/repo"),
    ],
)
def test_a_remote_is_read_into_its_parts(remote, parts):
    result = parsed(remote)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == parts


@pytest.mark.parametrize(
    ("remote", "said"),
    [
        ("s3://bucket/path", "is not a remote this stack can write to; use sftp://"),
        ("sftp://offsite@backup.example.net", "names no folder"),
        ("sftp://offsite@backup.example.net/", "names no folder"),
        ("sftp://backup.example.net/srv", "names no user"),
        ("sftp://offsite@backup.example.net:ssh/srv", "the port is not a number"),
        ("sftp://off;site@backup.example.net/srv", "letters, digits, dots, dashes and underscores"),
        ("sftp://offsite@back$(id)up/srv", "letters, digits, dots, dashes and underscores"),
    ],
)
def test_a_bad_remote_is_one_error_line_and_exit_3(remote, said):
    result = parsed(remote)
    assert result.returncode == 3
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: OPS_BACKUP_REMOTE='{remote}'")
    assert said in line


def test_a_moment_is_utc_to_the_second_or_latest():
    assert parse_moment("2026-12-05T12:00:00Z") == NOON
    assert parse_moment("latest") is None
    assert pgbackrest_time(NOON) == "2026-12-05 12:00:00+00"


@pytest.mark.parametrize(
    "text", ["2026-12-05 12:00:00", "2026-12-05T12:00:00", "2026-12-05T12:00:00+01:00", "noon", ""]
)
def test_a_moment_without_its_utc_form_is_refused(text):
    with pytest.raises(OpsError, match="give a UTC time as YYYY-MM-DDTHH:MM:SSZ, or latest"):
        parse_moment(text)


def test_a_window_holds_the_moments_between_its_ends_only():
    window = Window(1, NOON, NOON + datetime.timedelta(hours=1), 2)
    assert window.holds(NOON)
    assert window.holds(NOON + datetime.timedelta(minutes=30))
    assert not window.holds(NOON - datetime.timedelta(seconds=1))
    assert not window.holds(NOON + datetime.timedelta(hours=1, seconds=1))
    assert not Window(1, None, None, 0).holds(NOON)


def test_the_archiver_fails_when_its_last_attempt_failed():
    second = datetime.timedelta(seconds=1)
    assert not Archiver(NOON, None, 0, None).failing
    assert Archiver(NOON, NOON + second, 1, NOON).failing
    assert not Archiver(NOON + second, NOON, 0, None).failing
    assert Archiver(None, NOON, 1, NOON).failing


def test_the_lag_is_the_oldest_waiting_segment_age():
    waiting = Archiver(NOON, None, 3, NOON - datetime.timedelta(seconds=90))
    assert waiting.lag(NOON) == datetime.timedelta(seconds=90)
    assert Archiver(NOON, None, 0, None).lag(NOON) == datetime.timedelta(0)


def test_the_restore_check_names_each_table_that_differs():
    expected = {"public.cats_cat": 10, "public.auth_user": 1, "public.gone": 3}
    restored = {"public.cats_cat": 9, "public.auth_user": 1, "public.extra": 2}
    assert differences(expected, restored) == [
        "public.cats_cat: 10 at the point, 9 restored",
        "public.extra: no table at the point, 2 restored",
        "public.gone: 3 at the point, no table restored",
    ]
    assert differences(expected, dict(expected)) == []


def test_the_restore_checks_line_says_passed_failed_or_none():
    assert shown_result(None) == (True, "restore check: none yet (./ops backup runs one)")
    passed = {"time": "2026-12-05T03:17:00Z", "ok": True, "tables": 12, "rows": 10_042,
              "seconds": 14.4, "problem": None}  # fmt: skip
    assert shown_result(passed) == (
        True, "restore check: passed at 2026-12-05T03:17:00Z (12 tables, 10042 rows, 14 s)"
    )  # fmt: skip
    failed = {**passed, "ok": False, "problem": "public.cats_cat: 10 at the point, 9 restored"}
    assert shown_result(failed) == (
        False,
        "restore check: FAILED at 2026-12-05T03:17:00Z: public.cats_cat: 10 at the point, 9 "
        "restored",
    )


# pgBackRest 2.55's verify report (--output=text --verbose) of a repository with one byte of
# a bundle changed: it exits 0 all the same.
DAMAGED_REPORT = """\
stanza: catcollector
status: error
  archiveId: 17-1, total WAL checked: 3, total valid WAL: 3
    missing: 0, checksum invalid: 0, size invalid: 0, other: 0
  backup: 20261205-162852F, status: invalid, total files checked: 967, total valid files: 966
    missing: 0, checksum invalid: 1, size invalid: 0, other: 0
"""


def test_a_verify_report_names_what_is_damaged_or_nothing_when_ok():
    assert verify_problem(DAMAGED_REPORT) == (
        "backup: 20261205-162852F, status: invalid: "
        "missing: 0, checksum invalid: 1, size invalid: 0, other: 0"
    )
    whole = DAMAGED_REPORT.replace("status: error", "status: ok")
    assert verify_problem(whole) is None
    assert verify_problem("") == "pgBackRest's verify did not report ok"


def test_an_errors_evidence_is_its_commands_last_line_or_its_message():
    unreachable = "ERROR: [049]: unable to get address for 'backup-server'"
    failed = OpsError("listing the WAL failed (exit 49)", f"WARN: retrying\n{unreachable}\n")
    assert failed.evidence() == unreachable
    assert OpsError("no remote").evidence() == "no remote"
