"""The backup verbs' pieces that need no engine: the archive format and its checks, retention,
the migrations read from a dump, the schedule's units. The verbs themselves run against the
real engine in tests/ops/test_backup.py."""

import datetime
import io
import json
import shlex
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from tools.ops import archive, data
from tools.ops.archive import ArchiveError
from tools.ops.data import parse_migrations
from tools.ops.schedule import BOOT_WAIT_S, units

UTC = datetime.UTC
CREATED = datetime.datetime(2026, 12, 1, 3, 17, tzinfo=UTC)
KEY = archive.authentication_key("the stack's backup key")


def write_archive(path: Path, project: str = "catcollector", dump: bytes = b"PGDMP" * 200) -> Path:
    """An archive as ./ops backup writes it, with a stand-in dump (pg_restore is not here)."""
    with path.open("w+b") as out:
        writer = archive.Writer(out, CREATED.timestamp(), 0o640)
        writer.member(archive.DUMP, iter([dump[:700], dump[700:]]))
        # check() reads no member's contents but the manifest's and the sums': a stand-in
        # keeps the archive small enough to flip each of its bytes.
        writer.member(archive.MEDIA, iter([b"media.tar" * 20]))
        writer.finish({
            "format": archive.FORMAT_VERSION, "project": project,
            "created": CREATED.strftime("%Y-%m-%dT%H:%M:%SZ"), "app_version": "a",
            "migrations": ["cats.0001_initial"], "photos": {"files": 1, "bytes": 200},
        }, KEY)  # fmt: skip
    return path


def test_an_archive_reads_back_with_its_members_and_manifest(tmp_path):
    path = write_archive(tmp_path / "catcollector-20261201T031700Z.tar")
    checked = archive.check(path, key=KEY)
    assert list(checked.members) == [
        archive.DUMP, archive.MEDIA, archive.MANIFEST, archive.SUMS, archive.AUTH,
    ]  # fmt: skip
    assert archive.read_member(path, checked.members[archive.DUMP]) == b"PGDMP" * 200
    assert checked.project == "catcollector"
    assert checked.created == CREATED
    assert checked.manifest["members"][archive.DUMP]["size"] == 1000
    # Plain tar: an operator can list and extract it, and check it with sha256sum.
    with tarfile.open(path) as tar:
        assert tar.getnames() == [
            archive.DUMP, archive.MEDIA, archive.MANIFEST, archive.SUMS, archive.AUTH,
        ]  # fmt: skip
        sums = tar.extractfile(archive.SUMS).read().decode()
    assert f"  {archive.MANIFEST}\n" in sums


def test_every_flipped_byte_is_refused(tmp_path):
    """Headers, data, manifest, SHA256SUMS, padding and the end marker: no byte goes
    unchecked."""
    original = write_archive(tmp_path / "good.tar").read_bytes()
    damaged = tmp_path / "damaged.tar"
    accepted = []
    for position in range(len(original)):
        flipped = bytearray(original)
        flipped[position] ^= 0xFF
        damaged.write_bytes(flipped)
        try:
            archive.check(damaged, key=KEY)
        except ArchiveError:
            continue
        accepted.append(position)
    assert accepted == []


def test_every_truncation_is_refused(tmp_path):
    original = write_archive(tmp_path / "good.tar").read_bytes()
    cut = tmp_path / "cut.tar"
    # Every length, block boundaries included (where tar itself sees nothing wrong).
    for length in range(len(original)):
        cut.write_bytes(original[:length])
        with pytest.raises(ArchiveError) as refused:
            archive.check(cut, key=KEY)
        assert str(refused.value).startswith("truncated"), (length, str(refused.value))


def test_the_structure_check_alone_reads_the_manifest_but_not_the_data(tmp_path):
    path = write_archive(tmp_path / "a.tar")
    data = bytearray(path.read_bytes())
    member = archive.check(path, key=KEY).members[archive.DUMP]
    data[member.offset + 10] ^= 0xFF
    path.write_bytes(data)
    assert archive.check(path, key=None, checksums=False).project == "catcollector"
    with pytest.raises(ArchiveError, match=r"db\.dump does not match its checksum"):
        archive.check(path, key=KEY)


def test_an_extra_or_missing_member_is_refused(tmp_path):
    path = write_archive(tmp_path / "a.tar")
    with tarfile.open(path, "a") as tar:
        info = tarfile.TarInfo("notes.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ArchiveError, match=r"unexpected member 'notes\.txt'"):
        archive.check(path, key=KEY)


def rebuilt_with(source: Path, target: Path, body: bytes, key: bytes | None = KEY) -> Path:
    """`source` with its manifest replaced by `body`, SHA256SUMS recomputed and sealed with
    `key` (None: left unsealed): a tampered archive, made with the project's own writer."""
    checked = archive.check(source, key=KEY)
    with target.open("w+b") as out:
        writer = archive.Writer(out, CREATED.timestamp(), 0o640)
        for name in (archive.DUMP, archive.MEDIA):
            writer.member(name, iter([archive.read_member(source, checked.members[name])]))
        writer.member(archive.MANIFEST, iter([body]))
        listing = "".join(f"{writer.sums[name]}  {name}\n" for name in writer.sums).encode()
        writer.member(archive.SUMS, iter([listing]))
        if key is not None:
            writer.member(archive.AUTH, iter([archive.seal(key, listing)]))
        out.write(bytes(2 * archive.BLOCK))
    return target


def test_an_archive_sealed_without_the_stacks_key_is_refused(tmp_path):
    """Whole, every sum right, made by the project's own writer around another dump: only the
    backup key tells it from the stack's own."""
    source = write_archive(tmp_path / "a.tar")
    forged = write_archive(tmp_path / "b.tar", dump=b"DROP TABLE cats_cat;" * 50)
    body = json.dumps(archive.check(forged, key=KEY).manifest).encode()
    other_key = archive.authentication_key("another stack's backup key")
    resealed = rebuilt_with(forged, tmp_path / "c.tar", body, key=other_key)
    assert archive.check(resealed, key=None).project == "catcollector"
    with pytest.raises(ArchiveError, match=r"not authenticated: its SHA256SUMS\.hmac was not made"):
        archive.check(resealed, key=KEY)
    assert archive.check(source, key=KEY).project == "catcollector"


def test_a_format_1_archive_is_listed_but_never_authenticated(tmp_path):
    """Archives made before the HMAC: whole, listed as before, refused by what restores."""
    source = write_archive(tmp_path / "a.tar")
    manifest = archive.check(source, key=KEY).manifest | {"format": 1}
    old = rebuilt_with(source, tmp_path / "old.tar", json.dumps(manifest).encode(), key=None)
    assert archive.check(old, key=None).manifest["format"] == 1
    with pytest.raises(ArchiveError, match=r"not authenticated: it has no SHA256SUMS\.hmac"):
        archive.check(old, key=KEY)
    # Its seal stripped, a format 2 archive does not pass for an old one.
    stripped = rebuilt_with(source, tmp_path / "stripped.tar",
                            archive.read_member(source, archive.check(source, key=KEY).members[
                                archive.MANIFEST]), key=None)  # fmt: skip
    with pytest.raises(ArchiveError, match=r"a format 2 archive without SHA256SUMS\.hmac"):
        archive.check(stripped, key=None)


def test_a_manifest_that_disagrees_with_the_sums_is_refused(tmp_path):
    """A tampered archive whose SHA256SUMS was recomputed still has to match its manifest."""
    source = write_archive(tmp_path / "a.tar")
    manifest = archive.check(source, key=KEY).manifest
    manifest["members"][archive.DUMP]["size"] += 1
    rebuilt = rebuilt_with(source, tmp_path / "b.tar", json.dumps(manifest).encode())
    with pytest.raises(ArchiveError, match=r"db\.dump differs from the manifest"):
        archive.check(rebuilt, key=KEY)


def test_a_manifest_over_its_bound_is_refused_unread(tmp_path):
    source = write_archive(tmp_path / "a.tar")
    manifest = archive.check(source, key=KEY).manifest
    body = json.dumps(manifest).encode().ljust(2 * archive.MANIFEST_MAX_BYTES)
    rebuilt = rebuilt_with(source, tmp_path / "b.tar", body)
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError, match=r"manifest\.json is \d+ bytes, over"):
            archive.check(rebuilt, key=KEY)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < archive.MANIFEST_MAX_BYTES // 4


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: [m], "not a JSON object"),
        (lambda m: m | {"migrations": "cats.0001_initial"}, "migrations"),
        (lambda m: m | {"migrations": [1]}, "migrations"),
        (lambda m: m | {"photos": {"files": "1", "bytes": 200}}, "photos"),
        (lambda m: m | {"photos": {"files": True, "bytes": 200}}, "photos"),
        (lambda m: m | {"created": "yesterday"}, "created"),
        (lambda m: m | {"secrets": "yes"}, "secrets"),
        (lambda m: m | {"project": None}, "project"),
        (lambda m: {k: v for k, v in m.items() if k != "app_version"}, "has no app_version"),
        (lambda m: m | {"members": {n: {**e, "size": str(e["size"])}
                                    for n, e in m["members"].items()}}, "members"),
    ],
    ids=["list", "migrations-text", "migration-number", "photos-text", "photos-bool", "created",
         "secrets", "project", "absent", "member-size"],
)  # fmt: skip
def test_a_manifest_of_the_wrong_shape_is_refused_naming_the_field(change, named, tmp_path):
    """Readers index the manifest (./ops restore, ./ops backups): a field of the wrong type,
    in an archive hand-made around a listing that matches, is refused by the check."""
    source = write_archive(tmp_path / "a.tar")
    body = json.dumps(change(archive.check(source, key=KEY).manifest)).encode()
    rebuilt = rebuilt_with(source, tmp_path / "b.tar", body)
    with pytest.raises(ArchiveError, match=named):
        archive.check(rebuilt, key=KEY)


def test_names_say_project_and_time():
    name = archive.archive_name("catcollector", CREATED)
    assert name == "catcollector-20261201T031700Z.tar"
    assert archive.parse_name(name) == ("catcollector", CREATED)
    assert archive.parse_name(f".{name}.partial") is None
    assert archive.parse_name("catcollector-latest.tar") is None


def at(day: int, hour: int = 3) -> datetime.datetime:
    return datetime.datetime(2026, 11, day, hour, tzinfo=UTC)


def test_retention_keeps_the_newest_of_the_last_days_and_weeks():
    # 2026-11-02 is a Monday. Two archives a day from the 2nd to the 29th, none on the 27th.
    times = [at(day, hour) for day in range(2, 30) if day != 27 for hour in (3, 15)]
    kept = archive.retained(times, daily=3, weekly=3)
    # Days with an archive only: the 27th does not use up one of the three.
    daily = {when for when, why in kept.items() if "daily" in why}
    assert daily == {at(29, 15), at(28, 15), at(26, 15)}
    # ISO weeks 48 (23rd-29th), 47 (16th-22nd), 46 (9th-15th): each one's newest; the rules
    # are independent, so the 29th counts for both.
    weekly = {when for when, why in kept.items() if "weekly" in why}
    assert weekly == {at(29, 15), at(22, 15), at(15, 15)}
    assert set(kept) == daily | weekly
    assert kept[at(29, 15)] == ["daily", "weekly", "newest"]


def test_retention_never_drops_the_newest():
    times = [at(1), at(2), at(3)]
    assert set(archive.retained(times, daily=0, weekly=0)) == {at(3)}
    assert archive.retained([], daily=7, weekly=4) == {}


def test_retention_with_fewer_archives_than_it_may_keep_keeps_them_all():
    times = [at(1), at(9), at(20)]
    assert set(archive.retained(times, daily=7, weekly=4)) == set(times)


PG_RESTORE_SCRIPT = """--
-- Data for Name: django_migrations; Type: TABLE DATA; Schema: public; Owner: catcollector
--

COPY public.django_migrations (id, app, name, applied) FROM stdin;
1\tcontenttypes\t0001_initial\t2026-12-01 17:00:00.1+00
2\tcats\t0001_initial\t2026-12-01 17:00:00.2+00
\\.
"""


def test_the_migrations_are_read_from_the_dumps_copy_block():
    assert parse_migrations(PG_RESTORE_SCRIPT) == ["cats.0001_initial", "contenttypes.0001_initial"]
    assert parse_migrations("-- no data\n") == []


def test_the_timer_runs_exactly_ops_backup_in_the_project_folder_waiting_for_a_boot():
    written = units(Path("/srv/cat collector"), "catcollector", "deploy", "*-*-* 03:17:00")
    service = written["catcollector-backup.service"]
    settings = dict(
        line.split("=", 1) for line in service.splitlines() if "=" in line and line[0] != "#"
    )
    assert shlex.split(settings["ExecStart"]) == [
        "/srv/cat collector/ops",
        "backup",
        "--wait",
        str(BOOT_WAIT_S),
    ]
    assert settings["WorkingDirectory"] == "/srv/cat collector"
    assert settings["User"] == "deploy"
    assert settings["Type"] == "oneshot"
    timer = written["catcollector-backup.timer"]
    assert "OnCalendar=*-*-* 03:17:00\n" in timer
    assert "Persistent=true\n" in timer


def test_a_folder_docker_left_in_place_of_the_photos_copy_is_cleared(tmp_path):
    """A restore interrupted while its one-off container was being created: the daemon made
    the removed copy's path an empty folder, on which the next restore failed."""
    copy = tmp_path / data.PHOTOS_COPY
    copy.mkdir()
    data.remove_staged_copy(copy)
    assert not copy.exists()
    copy.write_bytes(b"media.tar")
    data.remove_staged_copy(copy)
    assert not copy.exists()
    data.remove_staged_copy(copy)
