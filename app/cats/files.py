"""Where a cat's files are stored and how they go: the thumbnail's name, which follows from its
photo's, and the removal of a file no row points at any more. The photo's own name is made
where it is checked (app.cats.photos.photo_path)."""

import logging
from pathlib import PurePath

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
