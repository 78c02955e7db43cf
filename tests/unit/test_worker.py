"""The worker's side (config.celery, app.cats.tasks, the Background work settings), without a
broker: tasks run eagerly, in this process. The broker, the worker's processes, its health and
its stop are tested through the stack (tests/stack/test_worker.py, tests/faults)."""

import logging

import pytest
from django.db import OperationalError

from app.cats import tasks, thumbnails
from config import celery as worker
from config.logging import request_id
from tests.unit.support import run_python
from tests.unit.test_settings import PRINT_SETTING, assert_refused

CALL = (7, "cats/0123456789abcdef.png")
# The memory for slots each call of the fixture's thumbnails.make was given.
memory: list[int] = []


@pytest.fixture
def attempts(monkeypatch):
    """thumbnails.make replaced: each call is recorded, and raises what the test sets."""
    calls: list[str | None] = []
    failure: list[BaseException] = []
    memory.clear()

    def make(cat_id, photo_name, *, wait_s, memory_bytes):
        calls.append(request_id.get())
        memory.append(memory_bytes)
        if failure:
            raise failure[0]
        return "made"

    monkeypatch.setattr(thumbnails, "make", make)
    return calls, failure


def test_the_task_takes_its_slot_from_the_workers_memory_not_webs(attempts, settings):
    settings.CELERY_PHOTO_CHECK_MEMORY_BYTES, settings.PHOTO_CHECK_MEMORY_BYTES = 3, 5
    assert tasks.make_thumbnail.apply(CALL).get() == "made"
    assert memory == [3]


def test_a_transient_error_is_retried_then_the_task_is_parked(attempts, caplog):
    calls, failure = attempts
    failure.append(OperationalError("the database is restarting"))
    with caplog.at_level(logging.ERROR, logger="app.cats.tasks"):
        result = tasks.make_thumbnail.apply(CALL)
    assert result.state == "FAILURE"
    assert len(calls) == 1 + tasks.MAX_RETRIES
    [parked] = [r for r in caplog.records if r.name == "app.cats.tasks"]
    assert parked.levelno == logging.ERROR
    assert parked.getMessage().startswith(
        f"task cats.make_thumbnail parked after {tasks.MAX_RETRIES} retries: OperationalError"
    )
    assert "make_thumbnails" in parked.getMessage()
    assert parked.task_args == repr(CALL)


def test_a_photo_that_is_gone_is_parked_at_once(attempts, caplog):
    calls, failure = attempts
    failure.append(FileNotFoundError(2, "No such file or directory"))
    with caplog.at_level(logging.ERROR, logger="app.cats.tasks"):
        result = tasks.make_thumbnail.apply(CALL)
    assert result.state == "FAILURE"
    assert len(calls) == 1
    [parked] = [r.getMessage() for r in caplog.records if r.name == "app.cats.tasks"]
    assert "parked after 0 retries: FileNotFoundError" in parked


def test_a_task_whose_process_keeps_dying_is_parked_not_run_again(attempts, caplog, monkeypatch):
    calls, _ = attempts
    counted = []
    monkeypatch.setattr(tasks, "deliveries", lambda task: counted.append(task) or 4)
    # As a worker runs it (apply() runs it in place, where nothing is redelivered).
    monkeypatch.setattr(tasks.make_thumbnail.request, "is_eager", False, raising=False)
    with caplog.at_level(logging.ERROR, logger="app.cats.tasks"):
        assert tasks.make_thumbnail.run(*CALL) == "parked"
    assert calls == []
    assert len(counted) == 1
    [parked] = [r.getMessage() for r in caplog.records if r.name == "app.cats.tasks"]
    assert "delivered 3 times without finishing" in parked


def test_the_retry_delays_stay_under_the_brokers_visibility_timeout(settings):
    """A retry waits in the worker unacknowledged; Redis would deliver it again past this."""
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert visibility > tasks.RETRY_BACKOFF_MAX_S + settings.CELERY_TASK_TIME_LIMIT


def test_the_task_runs_with_the_request_id_it_was_queued_with(attempts):
    calls, _ = attempts
    tasks.make_thumbnail.apply(CALL, headers={"request_id": "4f1c2d0e"})
    tasks.make_thumbnail.apply(CALL)
    # The first task's id, and none for the second: a pool process never carries it over.
    assert calls == ["4f1c2d0e", None]
    assert request_id.get() is None


def test_the_heartbeat_exists_while_the_consumer_runs(tmp_path, monkeypatch):
    heartbeat = tmp_path / "heartbeat"
    monkeypatch.setattr(worker, "HEARTBEAT_FILE", heartbeat)

    class Timer:
        cancelled = False

        def call_repeatedly(self, interval, function):
            self.interval, self.function = interval, function
            return self

        def cancel(self):
            self.cancelled = True

    class Consumer:
        timer = Timer()

    step = worker.Heartbeat(Consumer())
    step.start(Consumer)
    assert heartbeat.is_file()
    assert Consumer.timer.interval == worker.HEARTBEAT_INTERVAL_S
    heartbeat.unlink()
    Consumer.timer.function()
    assert heartbeat.is_file()
    step.stop(Consumer)
    assert not heartbeat.exists()
    assert Consumer.timer.cancelled


def test_the_workers_slot_memory_counts_each_process_of_its_pool():
    """Declared in the settings from CELERY_WORKER_CONCURRENCY: each more pool process leaves
    the photo slots CELERY_PROCESS_MEMORY_BYTES less."""

    def budget(concurrency: str) -> tuple[int, int]:
        result = run_python(*PRINT_SETTING, "CELERY_PHOTO_CHECK_MEMORY_BYTES",
                            env={"CELERY_WORKER_CONCURRENCY": concurrency})  # fmt: skip
        assert result.returncode == 0, result.stderr
        return int(result.stdout)

    one, four = budget("1"), budget("4")
    per_process = run_python(*PRINT_SETTING, "CELERY_PROCESS_MEMORY_BYTES").stdout
    assert one - four == 3 * int(per_process)


def test_a_pool_of_another_size_than_the_slots_were_sized_for_stops_the_worker(settings):
    settings.CELERY_WORKER_CONCURRENCY = 3

    class Started:  # a worker given --concurrency
        def __init__(self, concurrency: int) -> None:
            self.concurrency = concurrency

    assert worker.refuse_another_pool_size(sender=Started(3)) is None
    with pytest.raises(SystemExit) as stopped:
        worker.refuse_another_pool_size(sender=Started(5))
    assert str(stopped.value) == (
        "error: the pool has 5 processes but CELERY_WORKER_CONCURRENCY is 3, from which the "
        "photo slots are sized; set CELERY_WORKER_CONCURRENCY instead of --concurrency"
    )


def test_without_redis_host_nothing_is_queued():
    assert run_python(*PRINT_SETTING, "THUMBNAILS_QUEUED").stdout.strip() == "False"
    assert run_python(*PRINT_SETTING, "CELERY_BROKER_URL").stdout.strip() == "None"


def test_the_broker_url_carries_the_password_from_its_file(tmp_path):
    secret = tmp_path / "redis_password"
    secret.write_text("p@ss/word:1\n")
    result = run_python(
        *PRINT_SETTING, "CELERY_BROKER_URL",
        env={"REDIS_HOST": "redis", "REDIS_PASSWORD_FILE": str(secret)},
    )  # fmt: skip
    assert result.stdout.strip() == "'redis://:p%40ss%2Fword%3A1@redis:6379/0'"


def test_redis_host_without_a_password_is_one_line():
    result = run_python(*PRINT_SETTING, "CELERY_BROKER_URL", env={"REDIS_HOST": "redis"})
    assert_refused(result, "REDIS_HOST is set but REDIS_PASSWORD_FILE is not")


@pytest.mark.parametrize("value", ["0", "many"])
def test_a_bad_worker_concurrency_is_one_line(value):
    result = run_python(
        *PRINT_SETTING, "CELERY_WORKER_CONCURRENCY", env={"CELERY_WORKER_CONCURRENCY": value}
    )
    assert_refused(result, "CELERY_WORKER_CONCURRENCY")
