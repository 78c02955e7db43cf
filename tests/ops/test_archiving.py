"""Continuous archiving (docs/operations.md, Backups): one stack's life, in order, with its
remote on a real SFTP server (tests/harness/sftp.py).

The stack archives every WAL segment and every change to the photos to this VM and to the remote,
encrypted there. A moment is restored to the second: every cat acknowledged before it is back,
none after, the photos with them. The remote goes away: archiving queues, says so, the site
serves, and nothing is lost once it is back. Then the VM dies under writes (every container
killed, every volume gone, this VM's archives with them) and a new project recovers from the
remote alone: every write acknowledged more than RPO_BOUND_S before the end is back, and the
measured loss is recorded. Last, a byte changed on the remote is found, and refused.
"""

from __future__ import annotations

import datetime
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
from tests.ops.traffic import HEADERS, cat_names
from tests.stack.support import Client, png_bytes

# The promise (docs/operations.md, Backups): what a dead VM may lose.
RPO_BOUND_S = 60
ARCHIVED_BOUND_S = 90
WRITE_PAUSE_S = 0.2
WRITES_BEFORE_DEATH_S = 20
# Between the moment a restore goes back to and the writes on either side of it.
MOMENT_MARGIN_S = 2
state: dict = {}


@pytest.fixture(scope="module")
def remote(run_id: str, tmp_path_factory) -> Iterator[SftpServer]:
    with sftp_server(run_id, "archiving-remote", tmp_path_factory.mktemp("remote-keys")) as server:
        yield server


@pytest.fixture(scope="module")
def archived(run_id: str, tmp_path_factory, remote: SftpServer) -> Iterator[OpsProject]:
    """The stack deployed with the remote set, its first base backups taken."""
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


def photo_of(project: OpsProject, name: str) -> requests.Response | None:
    """The photo of the cat called `name`, through nginx; None if the cat has none."""
    cats = requests.get(project.site.url("/api/cats/?page_size=100"), headers=HEADERS,
                        timeout=15).json()["results"]  # fmt: skip
    [cat] = [c for c in cats if c["name"] == name]
    if not cat["photo_url"]:
        return None
    path = re.sub(r"^https?://[^/]+", "", cat["photo_url"])
    return requests.get(project.site.url(path), headers=HEADERS, timeout=15)


def switch_wal(project: OpsProject) -> None:
    """Close the current WAL segment now (archive_timeout would within 30 s)."""
    project.compose("exec", "-T", "db", "sh", "-c",
                    'psql -U "$POSTGRES_USER" -d postgres -c "SELECT pg_switch_wal()"')  # fmt: skip


def archived_past(project: OpsProject, moment: datetime.datetime) -> bool:
    """Every repository can restore `moment` (./ops backups names each one's window)."""
    listed = project.ops("backups", check=False).stdout
    windows = re.findall(r"(local|remote) repository: any second from (\S+) to (\S+)", listed)
    return len(windows) == 2 and all(utc(newest) >= moment for _, _, newest in windows)


def test_the_stack_archives_to_this_vm_and_the_remote(archived, remote):
    archived.ops("deploy", "a", "--build")
    archived.create_superuser()
    backed_up = archived.ops("backup")
    assert re.search(r"local repository: base backup \S+F \(full\)", backed_up.stdout)
    assert re.search(r"remote repository: base backup \S+F \(full\)", backed_up.stdout)
    listed = archived.ops("backups")
    assert "continuous archiving current" in listed.stdout.splitlines()[-1]
    stored = remote.files()
    assert any(f.startswith("pgbackrest/archive/catcollector/") for f in stored), stored
    assert any(f.startswith("photos/snapshots/") for f in stored), stored
    # Encrypted: a name only the database holds is in no file on the remote.
    secret = f"unguessable-{uuid.uuid4().hex}"
    client = Client(archived.site)
    client.log_in()
    add_cat(client, secret)
    switch_wal(archived)
    wait_until(lambda: archived_past(archived, now()), ARCHIVED_BOUND_S, what="archived")
    found = remote.container.exec("grep", "-rl", secret, "/srv/sftp", check=False)
    assert found.returncode == 1, found.stdout


def test_a_moment_is_restored_to_the_second_with_its_photos(archived):
    client = Client(archived.site)
    client.log_in()
    before = [f"before-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for name in before:
        add_cat(client, name, png_bytes((64, 48), color=(10, 200, 30)))
    time.sleep(MOMENT_MARGIN_S)
    moment = now()
    time.sleep(MOMENT_MARGIN_S)
    after = f"after-{uuid.uuid4().hex[:8]}"
    add_cat(client, after, png_bytes((64, 48), color=(200, 10, 30)))
    switch_wal(archived)
    wait_until(lambda: archived_past(archived, moment + datetime.timedelta(seconds=5)),
               ARCHIVED_BOUND_S, what="the moment archived")  # fmt: skip

    started = time.monotonic()
    restored = archived.ops("restore", "--time", shown(moment), "--replace")
    seconds = time.monotonic() - started
    assert "the site serves" in restored.stdout.splitlines()[-1]
    names = cat_names(archived.site)
    assert set(before) <= set(names)
    assert after not in names
    for name in before:
        photo = photo_of(archived, name)
        assert photo is not None, name
        assert photo.status_code == 200, name
    record("restore to a moment", {"seconds": round(seconds, 1), "cats": len(names)})


def test_a_remote_that_is_down_queues_says_so_and_loses_nothing(archived, remote):
    client = Client(archived.site)
    client.log_in()
    remote.stop()
    try:
        written = [f"while-down-{uuid.uuid4().hex[:8]}" for _ in range(3)]
        for name in written:
            add_cat(client, name, png_bytes((32, 24)))
        switch_wal(archived)
        behind = wait_until(
            lambda: (r := archived.ops("backups", "--max-age", "26", check=False)).returncode == 1
            and "BEHIND" in r.stderr and r,
            ARCHIVED_BOUND_S, what="the archiving said to be behind",
        )  # fmt: skip
        assert requests.get(archived.site.url("/"), headers=HEADERS, timeout=15).status_code == 200
    finally:
        remote.start()
    moment = now()
    wait_until(lambda: archived_past(archived, moment), ARCHIVED_BOUND_S * 2,
               what="the remote caught up")  # fmt: skip
    assert archived.ops("backups", "--max-age", "26").returncode == 0
    state["written while down"] = written
    record("remote down", {"reported": behind.stderr.strip().splitlines()[-1][:200]})


def test_the_vm_dies_and_a_new_one_recovers_from_the_remote(
    archived, remote, run_id, tmp_path_factory
):
    key = archived.compose("exec", "-T", "db", "cat", "/run/secrets/catcollector/backup_key")
    client = Client(archived.site)
    client.log_in()
    acknowledged: list[tuple[float, str]] = []

    def write(stop: threading.Event) -> None:
        while not stop.is_set():
            name = f"drill-{uuid.uuid4().hex[:8]}"
            add_cat(client, name, png_bytes((40, 30)) if len(acknowledged) % 5 == 0 else None)
            acknowledged.append((time.time(), name))
            time.sleep(WRITE_PAUSE_S)

    with Threads(write):
        time.sleep(WRITES_BEFORE_DEATH_S)
        # The VM dies: every process at once, then its disks.
        archived.compose("kill")
        died = time.time()
    archived.compose("down", "--volumes")
    assert acknowledged

    with project_copy(
        f"{run_id}-recovered", tmp_path_factory.mktemp("recovered"),
        {"DJANGO_ALLOWED_HOSTS": "localhost", **remote.settings(), "OPS_BACKUP_KEY": key.stdout},
    ) as recovered:  # fmt: skip
        git = ["git", "-c", "user.name=ops", "-c", "user.email=ops@example.org"]
        for step in (["init", "--quiet"], ["add", "--all"], ["commit", "--quiet", "-m", "new VM"]):
            subprocess.run([*git, *step], cwd=recovered.directory, check=True, capture_output=True)
        network = egress_network(recovered.name)
        remote.join(network)
        try:
            recovered_from_the_remote(recovered, remote, acknowledged, died)
        finally:
            remote.leave(network)


def recovered_from_the_remote(recovered, remote, acknowledged, died) -> None:
    """./ops recover in the new project; the writes it brought back; then the remote's damage."""
    started = time.monotonic()
    result = recovered.ops("recover")
    seconds = time.monotonic() - started
    assert "recovered from the remote" in result.stdout.splitlines()[-1]
    names = set(cat_names(recovered.site))
    lost = [(at, name) for at, name in acknowledged if name not in names]
    loss_window = died - min((at for at, _ in lost), default=died)
    assert all(died - at <= RPO_BOUND_S for at, _ in lost), lost[:5]
    assert set(state["written while down"]) <= names
    record("disaster drill", {
        "acknowledged": len(acknowledged), "lost": len(lost),
        "oldest_lost_before_death_s": round(loss_window, 1),
        "recover_s": round(seconds, 1),
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
