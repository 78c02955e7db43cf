"""Thumbnails of the photos, for the list page: how one is made. Who makes it (the worker, or
web in the request) is app.cats.dispatch's; until it exists the list shows a placeholder.

make() is idempotent, so a task delivered twice (its worker killed midway, a retry) does
no harm. The thumbnail's name follows from the photo's (app.cats.files), is
written whole under a temporary name and renamed, and is recorded only if the row still has
that photo: a photo replaced meanwhile leaves no thumbnail behind. Memory: the photo module's
rule (app.cats.photos), with the thumbnail's peak worked out from the header.
"""

import logging
import os
import tempfile
import time
from pathlib import Path

from django.conf import settings

from app.cats import files, formats, photos
from app.cats.models import Cat

# The longest side of a thumbnail, in pixels: the list's cells at twice their CSS size.
SIDE = 400

logger = logging.getLogger(__name__)


class TooLargeToThumbnail(Exception):
    """Making this photo's thumbnail would take more memory than a photo check may."""


def make(cat_id: int, photo_name: str, *, wait_s: float, memory_bytes: int) -> str:
    """Make and record the thumbnail of `photo_name` for cat `cat_id`, unless the cat no
    longer has that photo, in a slot of those `memory_bytes` holds (the container's, from the
    settings). Returns what happened: "made", "kept" (already there) or "stale".
    Raises NoSlotFree (no memory for it within `wait_s`), TooLargeToThumbnail,
    formats.Unreadable, OSError (storage) and database errors."""
    row = Cat.objects.filter(pk=cat_id).values_list("photo", "thumbnail").first()
    if row is None or row[0] != photo_name:
        logger.info("thumbnail not needed: cat %s no longer has photo %s", cat_id, photo_name)
        return "stale"
    storage = Cat._meta.get_field("photo").storage
    name = files.thumbnail_name(photo_name)
    if row[1] == name and storage.exists(name):
        return "kept"
    started = time.monotonic()
    with storage.open(photo_name, "rb") as photo:
        header = formats.read_header(photo, photo.size)
        peak = formats.thumbnail_peak_bytes(header, SIDE)
        if peak > photos.PHOTO_CHECK_BYTES:
            raise TooLargeToThumbnail(f"{photo_name}: {peak / photos.MIB:.0f} MiB needed")
        with photos.memory_for(peak, wait_s, memory_bytes):
            data = formats.make_thumbnail(photo, header, SIDE)
    _write(Path(storage.path(name)), data)
    if not Cat.objects.filter(pk=cat_id, photo=photo_name).update(thumbnail=name):
        # The photo was replaced or the cat deleted while this ran.
        storage.delete(name)
        logger.info("thumbnail not needed: cat %s changed its photo meanwhile", cat_id)
        return "stale"
    logger.info(
        "thumbnail made",
        extra={
            "cat_id": cat_id,
            "thumbnail": name,
            "duration_ms": round((time.monotonic() - started) * 1000),
            "estimated_peak_mib": round(peak / photos.MIB, 1),
        },
    )
    return "made"


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a reader (nginx) never sees half a thumbnail, and a second run
    replaces the first's file."""
    path.parent.mkdir(mode=settings.FILE_UPLOAD_DIRECTORY_PERMISSIONS, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(partial, settings.FILE_UPLOAD_PERMISSIONS)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
