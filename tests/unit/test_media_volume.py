"""scripts/media_volume.py, the photos' half of ./ops restore, on a folder standing in for the
media volume: what it stages from an archive, what it refuses, and what `reset` gives back after
a swap that finished or stopped halfway."""

import importlib.util
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "media_volume.py"
spec = importlib.util.spec_from_file_location("media_volume", SCRIPT)
media_volume = importlib.util.module_from_spec(spec)
spec.loader.exec_module(media_volume)


def tar_of(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def photo(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def tar_file(tmp_path: Path, media_tar: bytes) -> Path:
    path = tmp_path / "media.tar"
    path.write_bytes(media_tar)
    return path


def tree(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    (folder / "cats").mkdir(parents=True)
    (folder / "cats" / "old.jpg").write_bytes(b"old photo")
    (folder / "top.jpg").write_bytes(b"top photo")
    return folder


def test_stage_unpacks_the_photos(media, tmp_path, capsys):
    media_tar = tar_of([photo("cats/new.jpg", b"new photo"), photo("a.jpg", b"a")])
    media_volume.stage(media, tar_file(tmp_path, media_tar))
    assert tree(media / media_volume.STAGED) == {"a.jpg": b"a", "cats/new.jpg": b"new photo"}
    assert capsys.readouterr().out.strip() == "2 files, 10 bytes staged"


@pytest.mark.parametrize(
    "member",
    [
        photo("../escaped.jpg", b"out"),
        (tarfile.TarInfo("link.jpg"), b""),
    ],
    ids=["dot-dot", "symlink"],
)
def test_stage_refuses_what_is_not_a_photo_inside_the_folder_and_keeps_nothing(
    member, media, tmp_path
):
    info, data = member
    if info.name == "link.jpg":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    media_tar = tar_of([photo("fine.jpg", b"fine"), (info, data)])
    with pytest.raises(SystemExit, match="cannot be unpacked"):
        media_volume.stage(media, tar_file(tmp_path, media_tar))
    assert not (media / media_volume.STAGED).exists()
    assert not (tmp_path / "escaped.jpg").exists()
    assert tree(media) == {"cats/old.jpg": b"old photo", "top.jpg": b"top photo"}


@pytest.mark.parametrize("name", media_volume.OURS)
def test_stage_refuses_the_names_a_restore_keeps_for_itself(name, media, tmp_path):
    before = tree(media)
    media_tar = tar_of([photo("fine.jpg", b"fine"), photo(f"./{name}/x.jpg", b"x")])
    with pytest.raises(SystemExit, match="a name restores keep for themselves"):
        media_volume.stage(media, tar_file(tmp_path, media_tar))
    assert not (media / media_volume.STAGED).exists()
    assert tree(media) == before


SPARSE_BYTES = 1 << 30


def test_stage_refuses_a_sparse_file_that_would_outgrow_its_tar(media, tmp_path):
    """GNU tar packs a 1 GiB file of one written byte into a few kB; unpacked, it would be a
    1 GiB photo."""
    source = tmp_path / "source"
    (source / "cats").mkdir(parents=True)
    hollow = source / "cats" / "hollow.jpg"
    with hollow.open("wb") as handle:
        handle.write(b"\xff")
        handle.truncate(SPARSE_BYTES)
    packed = tmp_path / "media.tar"
    subprocess.run(["tar", "--sparse", "--format=posix", "-C", source, "-cf", packed, "cats"],
                   check=True)  # fmt: skip
    assert os.path.getsize(packed) < 64 * 1024
    with pytest.raises(SystemExit, match="a sparse file"):
        media_volume.stage(media, packed)
    assert not (media / media_volume.STAGED).exists()


def test_stage_keeps_an_absolute_name_inside_the_folder(media, tmp_path):
    media_tar = tar_of([photo("/etc/inside.jpg", b"in")])
    media_volume.stage(media, tar_file(tmp_path, media_tar))
    assert tree(media / media_volume.STAGED) == {"etc/inside.jpg": b"in"}


def test_stage_refuses_a_file_that_is_not_a_tar(media, tmp_path):
    with pytest.raises(SystemExit, match="cannot be unpacked"):
        media_volume.stage(media, tar_file(tmp_path, b"z" * 2048))
    assert not (media / media_volume.STAGED).exists()


def test_swap_then_reset_gives_the_volume_back(media, tmp_path):
    before = tree(media)
    media_volume.stage(media, tar_file(tmp_path, tar_of([photo("new.jpg", b"new")])))
    media_volume.swap(media)
    assert tree(media) == {"new.jpg": b"new", media_volume.SWAPPED: b""} | {
        f"{media_volume.SET_ASIDE}/{name}": data for name, data in before.items()
    }
    media_volume.reset(media)
    assert tree(media) == before
    assert sorted(path.name for path in media.iterdir()) == ["cats", "top.jpg"]


def test_reset_after_a_swap_stopped_while_setting_aside_keeps_every_current_photo(media, tmp_path):
    before = tree(media)
    media_volume.stage(media, tar_file(tmp_path, tar_of([photo("new.jpg", b"new")])))
    aside = media / media_volume.SET_ASIDE
    aside.mkdir()
    (media / "top.jpg").rename(aside / "top.jpg")
    media_volume.reset(media)
    assert tree(media) == before
    assert sorted(path.name for path in media.iterdir()) == ["cats", "top.jpg"]


def test_finish_removes_the_set_aside_photos_and_the_marker(media, tmp_path):
    media_volume.stage(media, tar_file(tmp_path, tar_of([photo("new.jpg", b"new")])))
    media_volume.swap(media)
    media_volume.finish(media)
    assert sorted(path.name for path in media.iterdir()) == ["new.jpg"]
