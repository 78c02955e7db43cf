"""Continuous archiving (docs/operations.md, Backups): one stack's life, in order, with its
remote on a real SFTP server (tests/harness/sftp.py).

A site of SEEDED_CATS cats and SEEDED_PHOTOS photos archives every WAL segment and every change
to the photos to this VM and to the remote, encrypted there; the lag from an acknowledged write
to the remote is measured. A moment is restored to the second while a writer ran around it:
every cat acknowledged before it is back with its photo, none sent after it. The remote goes
away: archiving queues, says so, the site serves, and nothing is lost once it is back. This
VM's repository is damaged: the backup's restore check fails and says so. Then the VM dies under
writes (every container killed, every volume gone, this VM's archives with them) and a new
project recovers from the remote alone: every write acknowledged more than RPO_BOUND_S before
the end is back, every restored cat has its photo, and the measured loss is recorded. Last, a
byte changed on the remote is found, and refused.
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.harness.docker import docker
from tests.harness.load import Threads
from tests.harness.measurements import record
from tests.harness.polling import wait_until
from tests.harness.sftp import SftpServer, sftp_server
from tests.ops.conftest import LOAD_LIMITS, OpsProject, project_copy
from tests.ops.seeds import psql, seed
from tests.ops.traffic import HEADERS
from tests.stack.support import Client, png_bytes

# The promise (docs/operations.md, Backups): what a dead VM may lose.
RPO_BOUND_S = 60
ARCHIVED_BOUND_S = 90
WRITE_PAUSE_S = 0.2
WRITES_BEFORE_DEATH_S = 20
# The writer around the moment a restore goes back to: seconds on each side of it.
AROUND_MOMENT_S = 4
# The site the archive holds, for restore times of a size that says something.
SEEDED_CATS, SEEDED_PHOTOS = 100_000, 1_000
PHOTO_EVERY = 5
LAG_POLL_S = 0.5
state: dict = {}


@pytest.fixture(scope="module")
def remote(run_id: str, tmp_path_factory) -> Iterator[SftpServer]:
    with sftp_server(run_id, "archiving-remote", tmp_path_factory.mktemp("remote-keys")) as server:
        yield server


@pytest.fixture(scope="module")
def archived(run_id: str, tmp_path_factory, remote: SftpServer) -> Iterator[OpsProject]:
    """The stack with the remote set (deployed by the first test)."""
    with project_copy(
        f"{run_id}-archiving", tmp_path_factory.mktemp("archiving"),
        {"DJANGO_ALLOWED_HOSTS": "localhost", **LOAD_LIMITS, **remote.settings()},
    ) as project:  # fmt: skip
        network = egress_network(project.name)
        remote.join(network)
        try:
            yield project
        finally:
            remote.leave(network)


def egress_network(project: str) -> str:
    """The project's egress network, made as compose makes it (its labels), so the remote can
    join it before the project's first container exists: the remote is reachable from the start,
    as a real one is."""
    name = f"{project}_egress"
    docker("network", "create", "--label", f"com.docker.compose.project={project}",
           "--label", "com.docker.compose.network=egress", name)  # fmt: skip
    return name


def utc(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def shown(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def add_cat(client: Client, name: str, photo: bytes | None = None) -> None:
    files = {"photo": ("cat.png", photo, "image/png")} if photo else None
    answer = client.post_form("/cats/new/", {"name": name, "breed": "Tabby", "age": "1"},
                              files=files)  # fmt: skip
    assert answer.status_code == 302, answer.text[:500]


def write_until(
    stop: threading.Event, client: Client, prefix: str, log: list,
    dead: threading.Event | None = None,
) -> None:  # fmt: skip
    """Cats one after the other until `stop`, every PHOTO_EVERY-th with a photo; `log` gets
    (sent, acknowledged, name, with photo) for each acknowledged one. A write that fails once
    `dead` is set (the VM killed) ends the writer: it was never acknowledged."""
    while not stop.is_set():
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        with_photo = len(log) % PHOTO_EVERY == 0
        sent = time.time()
        try:
            add_cat(client, name, png_bytes((40, 30)) if with_photo else None)
        except (requests.RequestException, AssertionError):
            if dead is not None and dead.is_set():
                return
            raise
        log.append((sent, time.time(), name, with_photo))
        time.sleep(WRITE_PAUSE_S)


def named(project: OpsProject, prefix: str) -> dict[str, str]:
    """name -> photo path ('' for none) of each cat whose name starts with `prefix`, read in the
    database (the API pages 100 at a time through a site of SEEDED_CATS)."""
    assert re.fullmatch(r"[a-z-]+", prefix), prefix
    query = f"SELECT name || '|' || photo FROM cats_cat WHERE name LIKE '{prefix}%'"  # noqa: S608
    rows = psql(project, query)
    return dict(line.split("|", 1) for line in rows.splitlines())


def photo_served(project: OpsProject, path: str) -> bool:
    answer = requests.get(project.site.url(f"/media/{path}"), headers=HEADERS, timeout=15)
    return answer.status_code == 200 and answer.content.startswith(b"\x89PNG")


def switch_wal(project: OpsProject) -> None:
    """Close the current WAL segment now (archive_timeout would within 30 s)."""
    psql(project, "SELECT pg_switch_wal()")


def current_segment(project: OpsProject) -> str:
    """The WAL segment PostgreSQL writes to now: a write acknowledged before is in it or before."""
    return psql(project, "SELECT pg_walfile_name(pg_current_wal_lsn())")


def archived_past(project: OpsProject, moment: datetime.datetime) -> bool:
    """Every repository can restore `moment` (./ops backups names each one's window); if not,
    an AssertionError with the listing, for the wait's last error."""
    listed = project.ops("backups", check=False)
    windows = re.findall(r"(local|remote) repository: any second from (\S+) to (\S+)",
                         listed.stdout)  # fmt: skip
    said = listed.stdout + listed.stderr
    assert len(windows) == 2, said
    assert all(utc(newest) >= moment for _, _, newest in windows), said
    return True


def remote_lag(project: OpsProject, remote: SftpServer, snapshots: set[str]) -> dict[str, float]:
    """Seconds from now (a write just acknowledged) until the remote holds its WAL segment and a
    new snapshot of the photos, watched on the server's disk; nothing is forced."""
    started = time.monotonic()
    segment = current_segment(project)
    lag: dict[str, float] = {}
    while len(lag) < 2 and time.monotonic() - started < RPO_BOUND_S:
        files = remote.files()
        names = [f.rsplit("/", 1)[-1] for f in files if f.startswith("pgbackrest/archive/")]
        if "database_s" not in lag and any(name.startswith(segment) for name in names):
            lag["database_s"] = round(time.monotonic() - started, 1)
        if "photos_s" not in lag and snapshot_files(files) - snapshots:
            lag["photos_s"] = round(time.monotonic() - started, 1)
        time.sleep(LAG_POLL_S)
    return lag


def snapshot_files(files: list[str]) -> set[str]:
    return {f for f in files if f.startswith("photos/snapshots/")}


def test_the_stack_archives_to_this_vm_and_the_remote(archived, remote):
    archived.ops("deploy", "a", "--build")
    archived.create_superuser()
    seed(archived, SEEDED_CATS, SEEDED_PHOTOS)
    backed_up = archived.ops("backup")
    assert re.search(r"local repository: base backup \S+F \(full\)", backed_up.stdout)
    assert re.search(r"remote repository: base backup \S+F \(full\)", backed_up.stdout)
    assert "every count as at the point" in backed_up.stdout
    listed = archived.ops("backups")
    assert "continuous archiving current" in listed.stdout.splitlines()[-1]
    stored = remote.files()
    assert any(f.startswith("pgbackrest/archive/catcollector/") for f in stored), stored
    assert snapshot_files(stored), stored
    state["database_bytes"] = int(psql(archived, "SELECT pg_database_size(current_database())"))

    client = Client(archived.site)
    client.log_in()
    secret = f"unguessable-{uuid.uuid4().hex}"
    snapshots = snapshot_files(remote.files())
    add_cat(client, secret, png_bytes((64, 48), color=(10, 200, 30)))
    lag = remote_lag(archived, remote, snapshots)
    assert set(lag) == {"database_s", "photos_s"}, f"not on the remote in {RPO_BOUND_S} s: {lag}"
    record("archive lag", lag)
    # Encrypted: a name only the database holds is in no file on the remote.
    found = remote.container.exec("grep", "-rl", secret, "/srv/sftp", check=False)
    assert found.returncode == 1, found.stdout


def test_a_moment_is_restored_to_the_second_with_its_photos(archived):
    """A writer adds cats on either side of the moment. A cat acknowledged before it was
    committed before it: it must be back, with its photo. One whose request was sent after it
    was committed after it: it must not be. (One in flight at the moment may go either way.)"""
    client = Client(archived.site)
    client.log_in()
    log: list = []
    with Threads(lambda stop: write_until(stop, client, "moment", log)):
        time.sleep(AROUND_MOMENT_S)
        moment = now() + datetime.timedelta(seconds=1)
        time.sleep(AROUND_MOMENT_S + 1)
    before = [(name, photo) for _, acked, name, photo in log if acked < moment.timestamp()]
    after = [name for sent, _, name, _ in log if sent > moment.timestamp()]
    assert before, log
    assert after, log
    switch_wal(archived)
    wait_until(lambda: archived_past(archived, moment + datetime.timedelta(seconds=5)),
               ARCHIVED_BOUND_S, what="the moment archived")  # fmt: skip

    started = time.monotonic()
    restored = archived.ops("restore", "--time", shown(moment), "--replace")
    seconds = time.monotonic() - started
    assert "the site serves" in restored.stdout.splitlines()[-1]
    rows = named(archived, "moment-")
    missing = [name for name, _ in before if name not in rows]
    assert not missing, f"acknowledged before {shown(moment)}, not restored: {missing}"
    late = [name for name in after if name in rows]
    assert not late, f"sent after {shown(moment)}, restored: {late}"
    unserved = [name for name, photo in before if photo and not photo_served(archived, rows[name])]
    assert not unserved, f"restored without their photo: {unserved}"
    record("restore to a moment", {
        "seconds": round(seconds, 1), "before": len(before), "after": len(after),
        "photos": sum(1 for _, photo in before if photo),
    })  # fmt: skip


def test_a_moment_no_write_follows_is_refused_with_the_way_to_it(archived):
    """A site with no write since the moment: the archive reaches past it (a restore point
    closes a segment) but holds no transaction after it, so PostgreSQL cannot tell it reached
    the moment and does not open. The verb says why and how to get that state, and undoes
    itself: the site serves what it served."""
    before = named(archived, "moment-")
    # Autovacuum's own transactions would follow the moment: nothing left for it to do.
    psql(archived, "VACUUM ANALYZE")
    moment = now() + datetime.timedelta(seconds=1)
    time.sleep(2)
    psql(archived, "SELECT pg_create_restore_point('after the moment, no transaction')")
    switch_wal(archived)
    wait_until(lambda: archived_past(archived, moment), ARCHIVED_BOUND_S,
               what="the moment archived")  # fmt: skip
    refused = archived.ops("restore", "--time", shown(moment), "--replace", check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert "restore: failed at recover: the archive holds no transaction committed after" in said
    assert "./ops restore --time latest" in said
    assert "recovery ended before configured recovery target was reached" in said
    assert named(archived, "moment-") == before
    assert (
        requests.get(archived.site.url("/readyz"), headers=HEADERS, timeout=15).status_code == 200
    )


def test_a_remote_that_is_down_queues_says_so_and_loses_nothing(archived, remote):
    client = Client(archived.site)
    client.log_in()
    remote.stop()
    try:
        written = [f"while-down-{uuid.uuid4().hex[:8]}" for _ in range(3)]
        for name in written:
            add_cat(client, name, png_bytes((32, 24)))
        # The remote holds these writes once its window reaches past this moment.
        moment = now()
        switch_wal(archived)
        behind = wait_until(lambda: said_behind(archived), ARCHIVED_BOUND_S,
                            what="the archiving said to be behind")  # fmt: skip
        assert "the remote repository cannot be read" in behind.stderr, behind.stderr
        assert requests.get(archived.site.url("/"), headers=HEADERS, timeout=15).status_code == 200
    finally:
        remote.start()
    wait_until(lambda: archived_past(archived, moment), ARCHIVED_BOUND_S * 2,
               what="the remote caught up")  # fmt: skip
    # The photos' copy tries again within its wait (postgres/photos-backup.sh).
    wait_until(lambda: archived.ops("backups", "--max-age", "26").returncode == 0,
               ARCHIVED_BOUND_S, what="the photos' remote copy caught up")  # fmt: skip
    state["written while down"] = written
    record("remote down", {"reported": behind.stderr.strip().splitlines()[-1][:200]})


def said_behind(project):
    """`backups --max-age` once it fails saying BEHIND; otherwise its output, as the error."""
    result = project.ops("backups", "--max-age", "26", check=False)
    said = result.stdout + result.stderr
    assert result.returncode == 1, said
    assert "BEHIND" in result.stderr, said
    return result


def test_a_damaged_local_repository_fails_the_restore_check_and_says_so(archived):
    """Bytes of every file of this VM's full base backup changed, as a failing disk would:
    the next backup's restore check cannot restore and fails the backup, and the result stays
    for monitoring until a check passes."""
    archived.compose("exec", "-T", "--user", "postgres", "db", "sh", "-c",
                     "for f in $(find /var/lib/pgbackrest/backup/catcollector/*F -type f "
                     "! -name 'backup.manifest*'); do printf XXXXXXXX | dd of=$f bs=1 seek=40 "
                     "conv=notrunc status=none; done")  # fmt: skip
    failed = archived.ops("backup", check=False)
    assert failed.returncode == 1, failed.stdout
    assert failed.stderr.startswith("backup: failed at restore check: "), failed.stderr
    result = json.loads((archived.directory / ".ops" / "restore-check.json").read_text())
    assert result["ok"] is False, result
    watched = archived.ops("backups", "--max-age", "26", check=False)
    assert watched.returncode == 1
    assert f"restore check: FAILED at {result['time']}" in watched.stdout
    assert "the last restore check FAILED" in watched.stderr


def test_the_vm_dies_and_a_new_one_recovers_from_the_remote(
    archived, remote, run_id, tmp_path_factory
):
    # The operator's copy of the key, taken off the VM as the docs say.
    key = archived.ops("backups", "--show-key").stdout.splitlines()[-1]
    client = Client(archived.site)
    client.log_in()
    log: list = []
    dead = threading.Event()
    with Threads(lambda stop: write_until(stop, client, "drill", log, dead)):
        time.sleep(WRITES_BEFORE_DEATH_S)
        # The VM dies: every process at once, then its disks.
        dead.set()
        archived.compose("kill")
        died = time.time()
    archived.compose("down", "--volumes")
    assert log

    with project_copy(
        f"{run_id}-recovered", tmp_path_factory.mktemp("recovered"),
        {"DJANGO_ALLOWED_HOSTS": "localhost", **remote.settings(), "OPS_BACKUP_KEY": key},
    ) as recovered:  # fmt: skip
        git = ["git", "-c", "user.name=ops", "-c", "user.email=ops@example.org"]
        for step in (["init", "--quiet"], ["add", "--all"], ["commit", "--quiet", "-m", "new VM"]):
            subprocess.run([*git, *step], cwd=recovered.directory, check=True, capture_output=True)
        network = egress_network(recovered.name)
        remote.join(network)
        try:
            recovered_from_the_remote(recovered, remote, log, died)
        finally:
            remote.leave(network)


def recovered_from_the_remote(recovered, remote, log, died) -> None:
    """./ops recover in the new project; the writes and photos it brought back; then the
    remote's damage."""
    started = time.monotonic()
    result = recovered.ops("recover")
    seconds = time.monotonic() - started
    assert "recovered from the remote" in result.stdout.splitlines()[-1]
    rows = named(recovered, "drill-")
    lost = [(acked, name) for _, acked, name, _ in log if name not in rows]
    loss_window = died - min((acked for acked, _ in lost), default=died)
    assert all(died - acked <= RPO_BOUND_S for acked, _ in lost), lost[:5]
    assert set(state["written while down"]) <= set(named(recovered, "while-down-"))
    assert psql(recovered, "SELECT count(*) FROM cats_cat WHERE name LIKE 'Cat %'") == str(
        SEEDED_CATS
    )
    # The photos' copy and the database's are separate streams: a photo is lost when its cat is
    # not restored, or is restored without it (its snapshot had not reached the remote). Either
    # way, only as recent as the writes lost.
    photos_lost = [(acked, name) for _, acked, name, photo in log if photo and (
        name not in rows or not photo_served(recovered, rows[name]))]  # fmt: skip
    assert all(died - acked <= RPO_BOUND_S for acked, _ in photos_lost), photos_lost[:5]
    photos_window = died - min((acked for acked, _ in photos_lost), default=died)
    record("disaster drill", {
        "acknowledged": len(log), "lost": len(lost),
        "photos_acknowledged": sum(1 for *_, photo in log if photo),
        "photos_lost": len(photos_lost),
        "oldest_lost_before_death_s": round(loss_window, 1),
        "oldest_photo_lost_before_death_s": round(photos_window, 1),
        "recover_s": round(seconds, 1), "database_mb": round(state["database_bytes"] / 1e6, 1),
        "photos": SEEDED_PHOTOS,
    })  # fmt: skip

    # Last: one byte of a base backup's file and one of a photos pack changed on the
    # server, as a hostile or failing host could. Verification finds both.
    whole = recovered.ops("backups", "--verify")
    assert "every repository reads back whole" in whole.stdout.splitlines()[-1]
    files = remote.files()
    changed = [
        next(f for f in files if re.search(r"^pgbackrest/backup/catcollector/[^/]+F/", f)
             and "manifest" not in f),
        next(f for f in files if f.startswith("photos/data/")),
    ]  # fmt: skip
    for name in changed:
        remote.container.exec("sh", "-c", f"printf X | dd of='/srv/sftp/offsite/repo/{name}' "
                                          "bs=1 seek=40 conv=notrunc status=none")  # fmt: skip
    damaged = recovered.ops("backups", "--verify", check=False)
    assert damaged.returncode == 1
    [reason] = damaged.stderr.strip().splitlines()[:1]
    assert "DAMAGED: remote: the database's copy" in reason, damaged.stderr
    assert "the photos' copy does not read back" in reason, damaged.stderr
