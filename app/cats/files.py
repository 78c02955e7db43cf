"""Where a cat's files are stored and how they go: the thumbnail's name, which follows from its
photo's, and the removal of a file no row points at any more, at the moment it stops being
pointed at (a failed save, a committed replacement or deletion). The photo's own name is made
where it is checked (app.cats.photos.photo_path)."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import PurePath

from django.db import transaction

THUMBNAILS = "thumbs"

logger = logging.getLogger(__name__)


def thumbnail_name(photo_name: str) -> str:
    return f"{THUMBNAILS}/{PurePath(photo_name).stem}.jpg"


def delete(storage, name: str) -> None:
    """Remove a file whose row is saved or gone. One that cannot be removed is only wasted
    space (the remove_orphan_files command finds it), never an error page."""
    try:
        storage.delete(name)
    except OSError as error:
        logger.warning("could not delete the photo file %s: %s", name, error)


def delete_on_commit(storage, *names: str, using: str | None = None) -> None:
    """Remove `names` once the transaction that stopped pointing at them commits: a
    rolled-back replacement or deletion keeps them."""
    for name in names:
        transaction.on_commit(partial(delete, storage, name), using=using)


@contextmanager
def kept_only_if_saved(field) -> Iterator[None]:
    """Around a save that may store `field`'s new upload: if the save fails after storing it,
    the stored file goes (no row points at it) and the field holds the upload again, so a
    retry stores it anew."""
    uploaded = field.name if field and not field._committed else None
    try:
        yield
    except BaseException:
        if uploaded is not None and field._committed:
            delete(field.storage, field.name)
            field.name, field._committed = uploaded, False
            setattr(field.instance, field.field.attname, field)
        raise
