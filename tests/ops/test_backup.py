"""./ops backup, backups and restore against the real engine: one stack's life, in order
(tests/ops/conftest.py).

A site with 10,000 cats and 200 photos is backed up quietly (the measured archive, and the
round trip's reference), then again by exactly the command the systemd timer runs while
visitors read and a writer adds cats, with retention pruning a folder of older archives.
Damaged, truncated, foreign, forged and too-new archives are refused with the database unchanged; a
restore over data asks first; a restore interrupted halfway puts the site back. Then the
volumes are wiped, a fresh stack comes up and the first archive brings back every row and
every photo byte for byte, while nginx answers 503 and the maintenance page, never 502.
Last, release b adds a migration and the archive taken under load, from release a, restores
into b and gets b's migration.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.harness.docker import clean_env
from tests.harness.measurements import record
from tests.ops.releases import EXPAND_MIGRATION, EXPAND_NAME, NICKNAME_FIELD
from tests.ops.seeds import psql, seed
from tests.ops.traffic import VISITORS, Traffic, written_once
from tests.stack.support import SITE_HOST
from tools.ops import archive, data

CATS = 10_000
PHOTOS = 200
# One line per table: its name and an md5 of all its rows in a fixed order.
TABLE_DIGESTS = """
SELECT tablename || ' ' || (xpath('/row/d/text()', query_to_xml(format(
  'SELECT md5(coalesce(string_agg(t::text, E''\\n'' ORDER BY t::text), '''')) AS d FROM %I AS t',
  tablename), false, true, '')))[1]::text
FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename
"""
# Retention in this scene: the newest of the last 3 days and of the last 3 weeks with archives.
KEEP_DAILY, KEEP_WEEKLY = 3, 3
# Older archives already in the folder (copies of a real one under older names), in 2025: the
# 11th of June is a Wednesday, the 9th the Monday of the same ISO week (24), the 2nd in week 23.
OLD = {
    "wed-noon": datetime.datetime(2025, 6, 11, 12, 0, tzinfo=datetime.UTC),
    "wed-morning": datetime.datetime(2025, 6, 11, 8, 0, tzinfo=datetime.UTC),
    "monday": datetime.datetime(2025, 6, 9, 8, 0, tzinfo=datetime.UTC),
    "week-before": datetime.datetime(2025, 6, 2, 8, 0, tzinfo=datetime.UTC),
    "may": datetime.datetime(2025, 5, 1, 8, 0, tzinfo=datetime.UTC),
}
# A damaged copy newer than all of them: were it counted, it would take the Monday's place.
DAMAGED_AT = datetime.datetime(2025, 6, 12, 8, 0, tzinfo=datetime.UTC)
RESTORE_POLL_S = 0.1

# What the scenes hand to the later ones.
state: dict = {}


def digests(project) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in psql(project, TABLE_DIGESTS).splitlines())


def photos(project) -> dict[str, str]:
    """name -> sha256 of every photo in the media volume, read in the running web container."""
    listing = project.compose(
        "exec", "-T", "web", "python", "/app/scripts/media_volume.py", "inventory"
    ).stdout.strip().splitlines()  # fmt: skip
    return {line.split("  ")[2]: line.split("  ")[0] for line in listing[:-1]}


def get(project, path: str) -> requests.Response:
    return requests.get(
        project.site.url(path), headers={"Host": SITE_HOST, "X-Forwarded-Proto": "https"},
        timeout=15, allow_redirects=False,
    )  # fmt: skip


def archive_path(result: subprocess.CompletedProcess[str]) -> Path:
    """./ops backup prints the archive's path last."""
    return Path(result.stdout.strip().splitlines()[-1])


def restore(project, path: Path, *args: str, answer: str | None = None):
    return subprocess.run(
        ["./ops", "restore", str(path), *args], cwd=project.directory, env=clean_env(),
        input=answer or "", capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def backup_key(project) -> str:
    """The stack's backup key, as `./ops backups --show-key` prints it for the operator to keep
    off the VM (docs/operations.md, Backups)."""
    return project.ops("backups", "--show-key").stdout.strip().splitlines()[-1]


def rebuilt(
    source: Path, target: Path, key: bytes, *, dump: bytes | None = None, **manifest
) -> Path:
    """A well-formed archive (every checksum right, sealed with `key`) from `source`'s members,
    with another dump or manifest values: what a careless copy, another project or, with
    another key, a forger would produce."""
    checked = archive.check(source, key=None)
    with target.open("w+b") as out:
        writer = archive.Writer(out, time.time(), 0o640)
        original = archive.read_member(source, checked.members[archive.DUMP])
        writer.member(archive.DUMP, iter([dump or original]))
        writer.member(archive.MEDIA, archive.chunks_of(source, checked.members[archive.MEDIA]))
        kept = {k: v for k, v in checked.manifest.items() if k != "members"}
        writer.finish({**kept, **manifest}, key)
    return target


def test_a_site_with_cats_and_photos(ops_project):
    ops_project.ops("deploy", "a", "--build")
    ops_project.create_superuser()
    with (ops_project.directory / ".env").open("a") as env:
        env.write(f"OPS_BACKUP_KEEP_DAILY={KEEP_DAILY}\nOPS_BACKUP_KEEP_WEEKLY={KEEP_WEEKLY}\n")
    seed(ops_project, CATS, PHOTOS)
    assert psql(ops_project, "SELECT count(*) FROM cats_cat") == str(CATS)
    assert len(photos(ops_project)) == PHOTOS


def restore_check(project) -> dict:
    """The newest restore check's result, as ./ops backup wrote it for monitoring."""
    return json.loads((project.directory / ".ops" / "restore-check.json").read_text())


def test_backup_writes_one_verified_archive_and_prints_its_path(ops_project):
    state["digests"], state["photos"] = digests(ops_project), photos(ops_project)
    result = ops_project.ops("backup")
    path = archive_path(result)
    lines = result.stdout.splitlines()
    assert [line.split("] ")[1] for line in lines if "] " in line] == [
        "check", "base backups", "database", "photos", "verify", "prune", "restore check",
    ]  # fmt: skip
    assert lines[-2].startswith("backup: done in ")
    assert path.parent == ops_project.archives
    assert re.fullmatch(rf"{ops_project.name}-\d{{8}}T\d{{6}}Z\.tar", path.name)
    assert path.stat().st_mode & 0o777 == 0o640
    state["backup_key"] = backup_key(ops_project)
    state["key"] = archive.authentication_key(state["backup_key"])
    checked = archive.check(path, key=state["key"])
    manifest = checked.manifest
    assert manifest["project"] == ops_project.name
    assert manifest["app_version"] == "a"
    assert "cats.0001_initial" in manifest["migrations"]
    assert manifest["photos"]["files"] == PHOTOS
    assert manifest["secrets"] is False
    assert archive.SECRETS not in checked.members
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    checked_restore = restore_check(ops_project)
    assert checked_restore["ok"] is True, checked_restore
    assert checked_restore["rows"] > CATS, checked_restore
    record("restore check", {key: checked_restore[key] for key in ("seconds", "rows")})
    # Kept outside the folder: retention below may remove it from there.
    state["quiet"] = ops_project.directory.parent / "quiet-backup.tar"
    os.link(path, state["quiet"])
    seconds = ops_project.durations["backup"]
    size = path.stat().st_size
    state["measured"] = {"cats": CATS, "photos": PHOTOS, "archive_bytes": size,
                         "backup_s": seconds}  # fmt: skip


def test_the_scheduled_backup_runs_under_load_and_prunes_by_retention(ops_project, tmp_path):
    """Runs exactly what the systemd timer runs (its ExecStart, in its WorkingDirectory)."""
    written = ops_project.ops("schedule", "--unit-dir", str(tmp_path), "--no-enable")
    assert "not enabled" in written.stdout
    service = (tmp_path / f"{ops_project.name}-backup.service").read_text()
    unit = dict(line.split("=", 1) for line in service.splitlines() if re.match(r"^\w+=", line))
    command, workdir = shlex.split(unit["ExecStart"]), Path(unit["WorkingDirectory"])
    assert workdir == ops_project.directory

    folder = ops_project.archives
    [first] = folder.iterdir()
    old = {
        label: folder / archive.archive_name(ops_project.name, when) for label, when in OLD.items()
    }
    for path in old.values():
        os.link(first, path)
    damaged = folder / archive.archive_name(ops_project.name, DAMAGED_AT)
    damaged.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    other = folder / archive.archive_name("another-project", DAMAGED_AT)
    os.link(first, other)
    leftover = folder / f".{ops_project.name}-20250101T000000Z.tar.partial"
    leftover.write_bytes(b"an interrupted backup")

    with Traffic(ops_project.site) as traffic:
        time.sleep(1)
        state["acknowledged_before"] = set(traffic.acknowledged)
        started = time.monotonic()
        result = subprocess.run(command, cwd=workdir, env=clean_env(), capture_output=True,
                                text=True, timeout=600, check=False)  # fmt: skip
        seconds = time.monotonic() - started
        state["acknowledged_by_end"] = set(traffic.acknowledged)
        time.sleep(1)
    state["acknowledged_after"] = set(traffic.acknowledged) - state["acknowledged_by_end"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert traffic.failures == [], traffic.explain(ops_project.logs())
    assert traffic.resent <= VISITORS, traffic.summary()
    assert written_once(ops_project.site, traffic.acknowledged) == {}
    record("backup under load", {**traffic.summary(), "seconds": round(seconds, 1)})
    assert len(state["acknowledged_by_end"]) > len(state["acknowledged_before"])
    assert state["acknowledged_after"]
    newest = archive_path(result)
    state["under_load"] = newest
    output = result.stdout
    assert f"removed {leftover.name}, left by an interrupted backup" in output, output
    assert f"not counted, left in place: {damaged.name}: truncated" in output, output
    # Today: the two new archives (the first one loses to the newer of its day). 2025: the
    # newest of each of the last days with archives (the 11th, the 9th) and of each of the
    # last weeks (24: the 11th, 23: the 2nd); the 11th's morning and May are pruned.
    assert sorted(path.name for path in folder.iterdir()) == sorted([
        newest.name, old["wed-noon"].name, old["monday"].name, old["week-before"].name,
        damaged.name, other.name,
    ])  # fmt: skip

    # A scheduled run that fails says so: exit status 1 (the unit fails) and one line for log
    # monitoring to match. Here the archive folder is a file.
    env_file = ops_project.directory / ".env"
    settings = env_file.read_text()
    env_file.write_text(f"{settings}OPS_BACKUP_DIR={leftover.parent / 'not-a-folder'}\n")
    (leftover.parent / "not-a-folder").write_text("")
    try:
        failed = subprocess.run(command, cwd=workdir, env=clean_env(), capture_output=True,
                                text=True, timeout=600, check=False)  # fmt: skip
    finally:
        env_file.write_text(settings)
        (leftover.parent / "not-a-folder").unlink()
    assert failed.returncode == 1
    assert failed.stderr.startswith("backup: failed at check: OPS_BACKUP_DIR="), failed.stderr
    assert failed.stderr.rstrip().endswith("is not a folder"), failed.stderr


def test_backups_lists_each_archive_with_age_size_and_state(ops_project):
    result = ops_project.ops("backups")
    listed = {line.split()[0]: line for line in result.stdout.splitlines() if ".tar" in line}
    newest = state["under_load"].name
    assert set(listed) == {
        newest, *(archive.archive_name(ops_project.name, OLD[label]) for label in
                  ("wed-noon", "monday", "week-before")),
        archive.archive_name(ops_project.name, DAMAGED_AT),
    }  # fmt: skip
    assert "verified: release a, " in listed[newest]
    assert "DAMAGED: truncated" in listed[archive.archive_name(ops_project.name, DAMAGED_AT)]
    assert "4 good archive(s)" in result.stdout
    # The scheduled run's restore check, under load: the counts at the point were exact.
    when = restore_check(ops_project)["time"]
    assert f"restore check: passed at {when} (" in result.stdout, result.stdout
    assert ops_project.ops("backups", "--max-age", "1").returncode == 0
    stale = ops_project.ops("backups", "--max-age", "0.0001", check=False)
    assert stale.returncode == 1
    assert "no archive is younger than 0.0001 h" in stale.stderr


@pytest.mark.parametrize(
    "damage",
    ["truncated", "flipped byte", "another project", "forged", "dump cut short", "newer release"],
)
def test_a_bad_archive_is_refused_and_nothing_changes(ops_project, damage, tmp_path):
    quiet = state["quiet"]
    key = state["key"]
    before = digests(ops_project)
    data = quiet.read_bytes()
    bad = tmp_path / quiet.name
    if damage == "truncated":
        bad.write_bytes(data[: len(data) * 6 // 10])
        expected = "is refused: truncated"
    elif damage == "flipped byte":
        dump = archive.check(quiet, key=key).members[archive.DUMP]
        flipped = bytearray(data)
        flipped[dump.offset + dump.size // 2] ^= 0x01
        bad.write_bytes(flipped)
        expected = "is refused: damaged: db.dump does not match its checksum"
    elif damage == "another project":
        rebuilt(quiet, bad, key, project="someone-else")
        expected = f"is an archive of project 'someone-else', not of '{ops_project.name}'"
    elif damage == "forged":
        # Made with the project's own writer around a dump of the forger's choosing (here a
        # copy of the real one), sealed without the stack's backup key.
        rebuilt(quiet, bad, archive.authentication_key("a guess at the backup key"))
        expected = (
            "is refused: not authenticated: its SHA256SUMS.hmac was not made with this "
            "stack's backup key"
        )
    elif damage == "dump cut short":
        # Whole by its checksums (they were taken of the cut dump): only reading the dump's
        # data back, as pg_restore does, finds it.
        dump = archive.read_member(quiet, archive.check(quiet, key=key).members[archive.DUMP])
        rebuilt(quiet, bad, key, dump=dump[: len(dump) * 8 // 10])
        expected = "its dump does not read back"
    else:
        manifest = archive.check(quiet, key=key).manifest
        rebuilt(quiet, bad, key, migrations=[*manifest["migrations"], "cats.9999_from_the_future"])
        expected = (
            "the archive comes from a newer version: release a does not know its migrations "
            "cats.9999_from_the_future"
        )
    result = restore(ops_project, bad, "--replace")
    assert result.returncode == 1, result.stdout
    assert expected in result.stderr
    assert "nothing changed" in result.stderr
    assert "] maintenance" not in result.stdout
    assert digests(ops_project) == before
    assert get(ops_project, "/readyz").status_code == 200


EVENT_TRIGGER = """
CREATE FUNCTION watch_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE EVENT TRIGGER watch_ddl ON ddl_command_start EXECUTE FUNCTION watch_ddl();
"""


def test_an_archive_that_needs_a_superuser_is_refused_and_the_site_comes_back(
    ops_project, tmp_path
):
    """Sealed with the stack's own key, so it passes every check, but its dump creates what
    only a superuser may: an event trigger, whose function would run inside every later schema
    change. The dump is loaded as web's role, so PostgreSQL refuses it, the restore undoes
    itself and the live data serves again, without the trigger."""
    before = digests(ops_project)
    psql(ops_project, EVENT_TRIGGER)
    try:
        dumped = subprocess.run(
            ["docker", "compose", "exec", "-T", "db", "pg_dump", "--format=custom",
             "--username=catcollector", "--dbname=catcollector"],
            cwd=ops_project.directory, env=clean_env(), capture_output=True, timeout=120,
            check=True,
        )  # fmt: skip
    finally:
        psql(ops_project, "DROP EVENT TRIGGER watch_ddl; DROP FUNCTION watch_ddl()")
    hostile = rebuilt(state["quiet"], tmp_path / state["quiet"].name, state["key"],
                      dump=dumped.stdout)  # fmt: skip
    result = restore(ops_project, hostile, "--replace")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "restore: failed at database" in output
    assert "permission denied to create event trigger" in output
    assert "undone: the previous database and photos serve again" in output
    assert digests(ops_project) == before
    assert psql(ops_project, "SELECT count(*) FROM pg_event_trigger") == "0"
    assert "restoring" not in psql(ops_project, "SELECT string_agg(datname, ' ') FROM pg_database")
    assert get(ops_project, "/readyz").status_code == 200


def test_a_restore_over_data_asks_first(ops_project):
    before = digests(ops_project)
    result = restore(ops_project, state["quiet"], answer="no\n")
    assert result.returncode == 1
    assert "holds data (auth_user, cats_cat" in result.stdout
    assert "Type yes to go on: no" in result.stdout
    assert "the replacement was not confirmed; nothing changed" in result.stderr
    assert digests(ops_project) == before


def test_an_interrupted_restore_puts_the_site_back(ops_project):
    before_rows, before_photos = digests(ops_project), photos(ops_project)
    process = subprocess.Popen(
        ["./ops", "restore", str(state["quiet"]), "--replace"], cwd=ops_project.directory,
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = []
    for line in process.stdout:
        output.append(line)
        if "] photos" in line:
            # As systemd or an operator's kill would: the verb must undo what it did.
            process.send_signal(signal.SIGTERM)
    process.wait(timeout=300)
    text = "".join(output)
    assert process.returncode == 1, text
    assert "restore: failed at photos: interrupted" in text
    assert "undone: the previous database and photos serve again" in text
    assert digests(ops_project) == before_rows
    assert photos(ops_project) == before_photos
    assert get(ops_project, "/readyz").status_code == 200
    assert get(ops_project, "/").status_code == 200
    databases = psql(ops_project, "SELECT string_agg(datname, ' ') FROM pg_database")
    assert "restoring" not in databases


class Poller(threading.Thread):
    """/readyz and a page through nginx, over and over, while a restore runs."""

    def __init__(self, project) -> None:
        super().__init__()
        self.project = project
        self.stop = threading.Event()
        self.answers: list[tuple[str, int | str, str]] = []
        self.maintenance_at: list[float] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for path in ("/readyz", "/"):
                try:
                    response = get(self.project, path)
                    self.answers.append((path, response.status_code, response.text))
                    if response.status_code == 503:
                        self.maintenance_at.append(time.monotonic())
                except requests.RequestException as error:
                    self.answers.append((path, type(error).__name__, ""))
            time.sleep(RESTORE_POLL_S)


def test_wipe_then_restore_brings_back_every_row_and_photo(ops_project):
    # What the interrupted restore above may leave, depending on timing: the folder Docker
    # makes at the photos' copy's path when its one-off container starts after the copy is
    # gone. Made here for certain: the restore must clear it.
    (ops_project.directory / ".ops" / data.PHOTOS_COPY).mkdir(exist_ok=True)
    ops_project.compose("down", "--volumes", "--timeout", "10")
    # The secrets went with the volumes: the new stack is given the key the operator kept,
    # before its first start, so the archives it restores are its own (docs/operations.md).
    with (ops_project.directory / ".env").open("a") as env:
        env.write(f"OPS_BACKUP_KEY={state['backup_key']}\n")
    ops_project.compose("up", "--detach", "--wait")
    assert psql(ops_project, "SELECT count(*) FROM cats_cat") == "0"
    assert photos(ops_project) == {}

    poller = Poller(ops_project)
    poller.start()
    started = time.monotonic()
    try:
        # An empty site: nothing to confirm.
        result = restore(ops_project, state["quiet"])
    finally:
        seconds = time.monotonic() - started
        poller.stop.set()
        poller.join()
    assert result.returncode == 0, result.stdout + result.stderr
    assert digests(ops_project) == state["digests"]
    assert photos(ops_project) == state["photos"]
    for name, sha256 in state["photos"].items():
        served = get(ops_project, f"/media/{name}")
        assert served.status_code == 200, name
        assert hashlib.sha256(served.content).hexdigest() == sha256, name
    assert get(ops_project, "/readyz").status_code == 200
    assert "Cat 1<" in get(ops_project, "/").text

    statuses = {(path, status) for path, status, _ in poller.answers}
    assert ("/readyz", 503) in statuses, statuses
    assert ("/", 503) in statuses, statuses
    assert statuses <= {("/readyz", 200), ("/readyz", 503), ("/", 200), ("/", 503)}, statuses
    pages = {text for path, status, text in poller.answers if path == "/" and status == 503}
    assert all("<h1>Back soon</h1>" in text for text in pages)
    readiness = {
        text for path, status, text in poller.answers if path == "/readyz" and status == 503
    }
    assert readiness == {'{"status": "maintenance"}\n'}
    window = poller.maintenance_at[-1] - poller.maintenance_at[0]
    record("backup and restore", {**state["measured"], "restore_s": round(seconds, 1),
                                  "maintenance_s": round(window, 1)})  # fmt: skip


def test_an_archive_from_before_a_migration_restores_into_the_release_after_it(ops_project):
    ops_project.edit(
        "app/cats/models.py", "    photo = models.ImageField(",
        NICKNAME_FIELD + "    photo = models.ImageField(",
    )  # fmt: skip
    ops_project.write(f"app/cats/migrations/{EXPAND_NAME}.py", EXPAND_MIGRATION)
    ops_project.ops("deploy", "b", "--build")
    archived = archive.check(state["under_load"], key=None).manifest
    assert f"cats.{EXPAND_NAME}" not in archived["migrations"]

    started = time.monotonic()
    result = restore(ops_project, state["under_load"], answer="yes\n")
    seconds = time.monotonic() - started

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 migration(s) of release b applied" in result.stdout
    assert f"cats.{EXPAND_NAME}" in psql(
        ops_project, "SELECT string_agg(app || '.' || name, ' ') FROM django_migrations"
    )
    assert psql(ops_project, "SELECT count(nickname) FROM cats_cat") == "0"
    names = set(psql(ops_project, "SELECT name FROM cats_cat").splitlines())
    # Every cat acknowledged before the backup began is in it; none acknowledged after it
    # ended is (the dump is one snapshot in between).
    assert state["acknowledged_before"] <= names
    assert state["acknowledged_after"].isdisjoint(names)
    assert len(names) >= CATS
    assert get(ops_project, "/readyz").status_code == 200
    record("restore across a migration", {"seconds": round(seconds, 1)})
