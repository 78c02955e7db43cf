"""The media volume's storage: Django's FileSystemStorage, minus the debris of failed saves.

Django leaves whatever it wrote when a save fails (an empty file when the first write fails, a
truncated one later), under its final name and with no row pointing at it. MediaStorage removes
that file, and turns a full volume (ENOSPC, or EDQUOT for a quota) into StorageFull, which the
views answer with 507 Insufficient Storage and the form.
"""

import errno
import logging
import os

from django.core.files.storage import FileSystemStorage

logger = logging.getLogger(__name__)
FULL = (errno.ENOSPC, errno.EDQUOT)


class StorageFull(OSError):
    """The media volume has no room for the file; nothing of it was left behind."""


class MediaStorage(FileSystemStorage):
    def _save(self, name: str, content) -> str:
        path = self.path(name)
        # Django creates the file with O_EXCL, so a file that did not exist before this save
        # and exists after it failing is this save's own (names are random: no other request
        # writes the same one). One that existed before is someone else's and stays. (Should
        # the name be taken, Django retries under another name; that file is not known here.)
        existed = os.path.lexists(path)
        try:
            return super()._save(name, content)
        except BaseException as error:
            # Also on a worker's timeout (SystemExit) or anything else: no name was returned,
            # so nothing will ever point at the file.
            if not existed:
                _remove(path)
            if isinstance(error, OSError) and error.errno in FULL:
                logger.error(
                    "media storage is full: could not store %s (%s); nothing was kept",
                    name,
                    error.strerror,
                )
                raise StorageFull(error.errno, error.strerror, name) from error
            raise


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        logger.warning("could not remove %s after a failed save: %s", path, error)
