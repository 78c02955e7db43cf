"""The Celery app: the worker of compose.worker.yaml runs it, web sends it tasks.

    celery --app config.celery worker

Its settings are Django's CELERY_* (config/settings.py, "Background work"). Beyond them, the
worker here:
- logs JSON lines through Django's logging (config.logging), each line of a task with the
  request id of the request that queued it (the `request_id` message header, set by
  app.cats.tasks.queue);
- touches HEARTBEAT_FILE every HEARTBEAT_INTERVAL_S while its consumer is connected to the
  broker, and removes it when the consumer stops: the container's health check reads its age
  (compose.worker.yaml), which costs a `stat`, not a Python start (docs/operations.md);
- refuses a pool of another size than the one its photo slots were sized for
  (refuse_another_pool_size).
"""

import os
from pathlib import Path

from celery import Celery, bootsteps, signals

from config.logging import clean_request_id, request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# On the worker's tmpfs; the health check (compose.worker.yaml) reads this path.
HEARTBEAT_FILE = Path("/tmp/worker-heartbeat")  # noqa: S108 (the container's own tmpfs)
HEARTBEAT_INTERVAL_S = 5

app = Celery("catcollector")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["app.cats"])


class Heartbeat(bootsteps.StartStopStep):
    """Touches HEARTBEAT_FILE while the consumer consumes. On a lost broker connection the
    consumer stops its steps (the file goes) and starts them again once reconnected."""

    requires = frozenset({"celery.worker.consumer.tasks:Tasks"})

    def __init__(self, parent, **kwargs) -> None:
        super().__init__(parent, **kwargs)
        self.timer = None

    def start(self, parent) -> None:
        HEARTBEAT_FILE.touch()
        self.timer = parent.timer.call_repeatedly(HEARTBEAT_INTERVAL_S, HEARTBEAT_FILE.touch)

    def stop(self, parent) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        HEARTBEAT_FILE.unlink(missing_ok=True)


app.steps["consumer"].add(Heartbeat)


@signals.setup_logging.connect
def keep_djangos_logging(**kwargs) -> None:
    """Connected, so Celery configures no logging of its own: Django's settings already
    configured the JSON lines (config.logging) when the worker loaded them."""


@signals.worker_init.connect
def refuse_another_pool_size(sender=None, **kwargs) -> None:
    """The settings size the worker's photo slots (CELERY_PHOTO_CHECK_MEMORY_BYTES) from
    CELERY_WORKER_CONCURRENCY: a pool of another size (`--concurrency` on the command line)
    would share memory they did not count, so the worker stops, saying which setting to use.
    SystemExit, because Celery logs and goes past any Exception a signal's receiver raises."""
    from django.conf import settings  # noqa: PLC0415 (Django is set up by now)

    pool = getattr(sender, "concurrency", None)
    if pool is not None and pool != settings.CELERY_WORKER_CONCURRENCY:
        raise SystemExit(
            f"error: the pool has {pool} processes but CELERY_WORKER_CONCURRENCY is "
            f"{settings.CELERY_WORKER_CONCURRENCY}, from which the photo slots are sized; "
            "set CELERY_WORKER_CONCURRENCY instead of --concurrency"
        )


@signals.task_prerun.connect
def take_request_id(task=None, **kwargs) -> None:
    # A worker finds a message's own headers among the request's attributes; a task run in
    # place (`apply`, the unit tests) in its `headers`.
    request = task.request if task else None
    value = getattr(request, "request_id", None) or (getattr(request, "headers", None) or {}).get(
        "request_id"
    )
    request_id.set(clean_request_id(value))


@signals.task_postrun.connect
def drop_request_id(**kwargs) -> None:
    # A pool process runs many tasks; the next one must not inherit this id.
    request_id.set(None)
