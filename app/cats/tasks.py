"""The worker's tasks (config.celery), and how web queues them.

A task is acknowledged once it has run, so one whose process is killed (or whose worker stops
before it finishes) is delivered again; one delivered MAX_DELIVERIES times without finishing is
parked rather than killing process after process.

A task that fails for a reason that passes (the database or the media volume away a moment,
every photo slot busy) is retried with a growing, jittered delay; after MAX_RETRIES, or at once
for a reason that does not pass (the photo is unreadable, gone, or too large to thumbnail), it
is parked: logged at ERROR with what is needed to run it again, and acknowledged, so it never
loops. The cat keeps no thumbnail, which is the record of what is parked:
`python manage.py make_thumbnails` makes every missing one.
"""

import logging
import time

from celery import Task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from app.cats import thumbnails
from app.cats.slots import NoSlotFree
from config.celery import app

MAX_RETRIES = 5
# Delays of about 2, 4, 8, 16, 32 s (each a random part of that: jitter), well under the
# broker's visibility timeout (settings).
RETRY_BACKOFF_S = 2
RETRY_BACKOFF_MAX_S = 60
# Retried: they pass. FileNotFoundError (an OSError) is the photo gone, which does not.
TRANSIENT = (OperationalError, InterfaceError, OSError, NoSlotFree)
PERMANENT = (FileNotFoundError,)
# Deliveries of one attempt after which it is parked: its process died each time.
MAX_DELIVERIES = 3
# The broker's count of one attempt's deliveries (a retry is a new attempt).
DELIVERIES_KEY = "catcollector:deliveries:{task_id}:{retries}"
DELIVERIES_KEPT_S = 24 * 3600
# web's wait for the broker when queueing: one quick reconnection attempt, then it makes the
# thumbnail itself.
QUEUE_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5}
# After the broker failed, how long this process makes thumbnails itself without asking it.
BROKER_PAUSE_S = 30

logger = logging.getLogger(__name__)


class ParkedOnFailure(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        logger.error(
            "task %s parked after %s retries: %s: %s; run it again with "
            "`python manage.py make_thumbnails`",
            self.name,
            self.request.retries,
            type(exc).__name__,
            exc,
            extra={"task_id": task_id, "task_args": repr(args)},
        )


@app.task(
    base=ParkedOnFailure,
    bind=True,
    name="cats.make_thumbnail",
    autoretry_for=TRANSIENT,
    dont_autoretry_for=PERMANENT,
    max_retries=MAX_RETRIES,
    retry_backoff=RETRY_BACKOFF_S,
    retry_backoff_max=RETRY_BACKOFF_MAX_S,
    retry_jitter=True,
)
def make_thumbnail(self, cat_id: int, photo_name: str) -> str:
    if not self.request.is_eager and deliveries(self) > MAX_DELIVERIES:
        # Its process died every time (killed: the OOM killer, a hard crash in a decoder), or
        # its worker stopped each time before it finished. Delivered again on each death
        # (acks_late), it would loop forever.
        logger.error(
            "task %s parked: delivered %s times without finishing; run it again with "
            "`python manage.py make_thumbnails`",
            self.name,
            MAX_DELIVERIES,
            extra={"task_id": self.request.id, "task_args": repr((cat_id, photo_name))},
        )
        return "parked"
    # Waits for a photo slot as long as a web request would; busy, it is retried later
    # rather than holding a pool process.
    return thumbnails.make(cat_id, photo_name, wait_s=settings.PHOTO_CHECK_WAIT_SECONDS,
                           memory_bytes=settings.CELERY_PHOTO_CHECK_MEMORY_BYTES)  # fmt: skip


def deliveries(task: Task) -> int:
    """How often this attempt of `task` (a retry is a new attempt) has been delivered, counted
    in the broker: a message handed back after its process died comes back unchanged."""
    key = DELIVERIES_KEY.format(task_id=task.request.id, retries=task.request.retries)
    try:
        with task.app.connection_for_write() as connection:
            client = connection.default_channel.client
            count = client.incr(key)
            client.expire(key, DELIVERIES_KEPT_S)
    except (KombuError, RedisError, OSError) as error:
        # Not counted this once: the work matters more than the guard.
        logger.warning("deliveries of %s not counted: %s", task.request.id, error)
        return 1
    return count


def queue(cat_id: int, photo_name: str, request: str | None) -> bool:
    """Send the task, carrying the id of the `request` that stored the photo (the worker's log
    lines of the task show it); False (and a warning) when the broker does not take it. After a
    failure this process does not ask the broker again for BROKER_PAUSE_S: each upload meanwhile
    is answered without waiting for it."""
    global _broker_failed_at  # noqa: PLW0603 (one per process, like the connection pool)
    if time.monotonic() - _broker_failed_at < BROKER_PAUSE_S:
        return False
    try:
        make_thumbnail.apply_async(
            (cat_id, photo_name),
            headers={"request_id": request},
            retry=True,
            retry_policy=QUEUE_RETRY_POLICY,
        )
    except (KombuError, RedisError, OSError) as error:
        _broker_failed_at = time.monotonic()
        logger.warning(
            "broker unreachable (%s: %s); thumbnails are made in the request for %s s",
            type(error).__name__,
            error,
            BROKER_PAUSE_S,
        )
        return False
    return True


_broker_failed_at = -BROKER_PAUSE_S
