"""A failed upload leaves no file behind (config.storage.MediaStorage, Cat.save), and a full
media volume is a 507 with the form, not a 500.

The storage runs against a real full filesystem: a 256 kB tmpfs mounted in a user and mount
namespace of its own (`unshare`, no root needed where the kernel allows unprivileged user
namespaces, as Debian's does). The view's 507 runs in this process, which cannot enter such a
namespace (it has threads): there the disk's ENOSPC is raised by the file object the storage
writes through, the one simulated part. The faults layer fills a real volume under the stack
(tests/faults/test_uploads.py).
"""

import errno
import io
import json
import logging
import os
import shutil
import subprocess
import sys

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DataError
from PIL import Image

from app.cats.models import Cat
from tests.harness import REPO, ci
from tests.unit.support import add_cat, image_bytes, stored_files

LEFT_FREE = 16 * 1024

FULL_VOLUME_SCRIPT = f"""
import json, os, sys
import django
django.setup()
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import TemporaryUploadedFile
from config.storage import StorageFull

root = sys.argv[1]
os.makedirs(os.path.join(root, "cats"))
stats = os.statvfs(root)
with open(os.path.join(root, "filler"), "wb") as filler:
    filler.write(bytes(stats.f_bavail * stats.f_frsize - {LEFT_FREE}))
photo = os.urandom(100 * 1024)
temporary = TemporaryUploadedFile("cat.png", "image/png", len(photo), None)
temporary.write(photo)
temporary.seek(0)
results = {{}}
for kind, content in [("in memory", ContentFile(photo)), ("temporary file", temporary)]:
    try:
        default_storage.save(f"cats/{{kind}}.png", content)
        results[kind] = "saved"
    except StorageFull as error:
        results[kind] = f"StorageFull: {{error.strerror}}"
default_storage.save("cats/small.png", ContentFile(os.urandom(4096)))
print(json.dumps({{"results": results, "files": sorted(os.listdir(os.path.join(root, "cats")))}}))
"""


def in_namespace_with_tmpfs() -> list[str] | None:
    """The command prefix that runs a command with a 256 kB tmpfs mounted at its first
    argument, or None where the kernel refuses unprivileged namespaces."""
    if shutil.which("unshare") is None:
        return None
    prefix = [
        "unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
        'mount -t tmpfs -o size=256k tmpfs "$1" && shift && exec "$@"', "sh",
    ]  # fmt: skip
    probe = subprocess.run([*prefix, "/tmp", "true"], capture_output=True, check=False)
    return prefix if probe.returncode == 0 else None


def test_a_full_volume_keeps_no_partial_file_and_raises_storage_full(tmp_path):
    prefix = in_namespace_with_tmpfs()
    if prefix is None:
        reason = "no unprivileged user namespaces here to mount a small tmpfs in"
        if ci():
            pytest.fail(f"CI is set and this test cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    media = tmp_path / "media"
    media.mkdir()
    result = subprocess.run(
        [*prefix, str(media), sys.executable, "-c", FULL_VOLUME_SCRIPT, str(media)],
        cwd=REPO,
        env=os.environ | {"DJANGO_MEDIA_ROOT": str(media)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["results"] == {
        "in memory": "StorageFull: No space left on device",
        "temporary file": "StorageFull: No space left on device",
    }
    # Neither left a file (a partial one would be 16 kB of the photo); the small one fits.
    assert outcome["files"] == ["small.png"]
    # Django's log (JSON lines on stdout) says so, for the operators.
    assert "media storage is full: could not store cats/in memory.png" in result.stdout


class Interrupted(BaseException):
    """Stands for what stops a worker midway (gunicorn's timeout raises SystemExit)."""


class StopsMidway(SimpleUploadedFile):
    def chunks(self, chunk_size=None):
        yield b"\x89PNG first part of the photo"
        raise Interrupted


def test_a_save_stopped_midway_leaves_nothing(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    with pytest.raises(Interrupted):
        default_storage.save("cats/photo.png", StopsMidway("photo.png", b"unused"))
    assert stored_files(tmp_path) == []


def test_an_existing_file_of_the_same_name_is_never_removed(settings, tmp_path):
    """Only a file the failed save created goes: Django saved under another name here."""
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "photo.png").write_bytes(b"someone else's")
    with pytest.raises(Interrupted):
        default_storage.save("cats/photo.png", StopsMidway("photo.png", b"unused"))
    assert (tmp_path / "cats" / "photo.png").read_bytes() == b"someone else's"


class FillsUp:
    """A file on a disk with `room` bytes left: the write that does not fit stores what
    fits and fails with ENOSPC, as the kernel does."""

    def __init__(self, file, room: int) -> None:
        self.file, self.room = file, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.file.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)

    def close(self) -> None:
        self.file.close()


@pytest.fixture
def full_disk(monkeypatch):
    """The media volume with 1000 bytes left (os.fdopen is what FileSystemStorage writes
    uploads held in memory through)."""
    fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FillsUp(fdopen(fd, mode), 1000))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("full_disk")
def test_a_full_volume_answers_507_with_the_form(member, media_root, caplog):
    buffer = io.BytesIO()
    Image.effect_noise((300, 200), 60).convert("RGB").save(buffer, format="PNG")
    photo = buffer.getvalue()
    assert len(photo) > 1000
    with caplog.at_level(logging.ERROR, logger="config.storage"):
        response = add_cat(member, photo=SimpleUploadedFile("cat.png", photo))
    assert response.status_code == 507
    page = response.content.decode()
    assert "the server&#x27;s storage is full. Nothing was saved" in page
    assert 'name="name" value="Mittens"' in page
    assert not Cat.objects.exists()
    assert stored_files(media_root) == []
    stored = [r.getMessage() for r in caplog.records if r.name == "config.storage"]
    assert len(stored) == 1
    assert stored[0].startswith("media storage is full: could not store cats/")


# Transactional: no test transaction around the save, as in a request (autocommit).
@pytest.mark.django_db(transaction=True)
def test_a_row_that_cannot_be_written_leaves_no_photo_file(media_root):
    cat = Cat(name="x" * 101, age=3, photo=SimpleUploadedFile("cat.png", image_bytes()))
    with pytest.raises(DataError):  # PostgreSQL's varchar(100)
        cat.save()
    assert stored_files(media_root) == []
    # The instance is as before the save: corrected, it saves and stores the photo.
    cat.name = "Mittens"
    cat.save()
    # With its thumbnail, made once the row is committed (no worker here).
    cat.refresh_from_db()
    assert stored_files(media_root) == sorted([cat.photo.name, cat.thumbnail.name])


@pytest.mark.django_db(transaction=True)
def test_a_failed_edit_keeps_the_old_photo_and_drops_the_new(media_root):
    cat = Cat.objects.create(
        name="Mittens", age=3, photo=SimpleUploadedFile("cat.png", image_bytes())
    )
    old = cat.photo.name
    old_thumbnail = Cat.objects.get().thumbnail.name
    cat.name = "x" * 101
    cat.photo = SimpleUploadedFile("new.gif", image_bytes("GIF"))
    with pytest.raises(DataError):
        cat.save()
    assert stored_files(media_root) == sorted([old, old_thumbnail])
    assert Cat.objects.get().photo.name == old
    assert Cat.objects.get().thumbnail.name == old_thumbnail
