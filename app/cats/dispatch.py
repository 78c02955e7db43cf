"""Who makes a new photo's thumbnail, once its row is committed (app.cats.models sends
photo_stored then): the worker, when one runs (compose.worker.yaml sets REDIS_HOST, so
settings.THUMBNAILS_QUEUED), and web in the request otherwise, or when the broker does not
answer. Connected when the app is ready (app.cats.apps)."""

import logging

from django.conf import settings
from django.dispatch import receiver

from app.cats import thumbnails
from app.cats.models import Cat, photo_stored
from app.cats.slots import NoSlotFree

logger = logging.getLogger(__name__)


@receiver(photo_stored, sender=Cat)
def _photo_stored(sender, cat_id: int, photo_name: str, request: str | None, **kwargs) -> None:
    schedule(cat_id, photo_name, request)


def schedule(cat_id: int, photo_name: str, request: str | None = None) -> None:
    """Queue the thumbnail of `photo_name` for the worker, carrying the id of the `request`
    that stored it, or make it now. A thumbnail that cannot be made now is logged; the list
    shows the placeholder until `python manage.py make_thumbnails` makes it."""
    if settings.THUMBNAILS_QUEUED:
        from app.cats import tasks  # noqa: PLC0415 (Celery is only loaded where it is used)

        if tasks.queue(cat_id, photo_name, request):
            return
    try:
        thumbnails.make(cat_id, photo_name, wait_s=settings.PHOTO_CHECK_WAIT_SECONDS,
                        memory_bytes=settings.PHOTO_CHECK_MEMORY_BYTES)  # fmt: skip
    except NoSlotFree:
        # Capacity, not a fault: the upload is not refused for its thumbnail's sake.
        logger.warning("thumbnail of cat %s not made: every photo slot stayed busy", cat_id)
    except Exception:
        # The photo is stored and its row committed: the upload succeeded either way.
        logger.exception("thumbnail of cat %s not made; the list shows a placeholder", cat_id)
