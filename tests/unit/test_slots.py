"""app.cats.slots: a fixed number of holders at once across threads and processes, a bounded
wait, and a slot that comes back when its holder is killed."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from app.cats.slots import NoSlotFree, Slots
from tests.harness import REPO

NAME = "test-slot"
# Well above the time a holder needs to start on a loaded 2-core machine.
START_BOUND_S = 30


def holder_process(directory, count: int, seconds: float) -> subprocess.Popen:
    """Another process holding one of `count` slots for `seconds` (or until killed); returns
    once it holds it."""
    code = (
        "import sys, time\n"
        "from app.cats.slots import Slots\n"
        f"with Slots({str(directory)!r}, {NAME!r}, {count}).hold(30):\n"
        "    print('held', flush=True)\n"
        f"    time.sleep({seconds})\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline() == "held\n"
    return process


def test_threads_of_one_process_share_the_slots_out(tmp_path):
    slots = Slots(tmp_path, NAME, 2)
    holding, most, lock = 0, 0, threading.Lock()
    errors: list[Exception] = []

    def work() -> None:
        nonlocal holding, most
        try:
            with slots.hold(START_BOUND_S):
                with lock:
                    holding += 1
                    most = max(most, holding)
                time.sleep(0.05)
                with lock:
                    holding -= 1
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert most == 2


def test_a_second_thread_is_refused_the_only_slot_until_it_is_released(tmp_path):
    """The trap flock() avoids: POSIX record locks (lockf) would let a second thread of the
    same process in."""
    slots = Slots(tmp_path, NAME, 1)
    outcome: list[str] = []

    def other_thread() -> None:
        try:
            with slots.hold(0.2):
                outcome.append("held")
        except NoSlotFree:
            outcome.append("refused")

    with slots.hold(1):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert outcome == ["refused"]
    with slots.hold(0.2) as held:
        assert held.index == 0


def test_processes_share_the_slots_and_the_wait_is_bounded(tmp_path):
    holders = [holder_process(tmp_path, 2, 30) for _ in range(2)]
    try:
        started = time.monotonic()
        with pytest.raises(NoSlotFree), Slots(tmp_path, NAME, 2).hold(0.5):
            pass
        waited = time.monotonic() - started
        assert 0.5 <= waited < 1.5, waited
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
            holder.stdout.close()


def test_a_slot_comes_back_when_its_holder_is_killed(tmp_path):
    holder = holder_process(tmp_path, 1, 600)
    try:
        with pytest.raises(NoSlotFree), Slots(tmp_path, NAME, 1).hold(0.1):
            pass
        # As gunicorn's timeout or the OOM killer end a worker: no chance to release anything.
        os.kill(holder.pid, signal.SIGKILL)
        assert holder.wait(START_BOUND_S) == -signal.SIGKILL
    finally:
        holder.kill()
        holder.stdout.close()
    started = time.monotonic()
    with Slots(tmp_path, NAME, 1).hold(1) as held:
        assert held.index == 0
    assert time.monotonic() - started < 0.5


def test_a_released_slot_is_free_again_and_the_files_stay_empty(tmp_path):
    slots = Slots(tmp_path, NAME, 3)
    for _ in range(5):
        with slots.hold(0):
            pass
    held = [slots.hold(0) for _ in range(3)]
    assert sorted(h.index for h in held) == [0, 1, 2]
    with pytest.raises(NoSlotFree):
        slots.hold(0)
    held[1].close()
    with slots.hold(0) as again:
        assert again.index == 1
    for h in held:
        h.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{NAME}.{i}" for i in range(3)]
    assert {p.stat().st_size for p in tmp_path.iterdir()} == {0}


def test_at_least_one_slot():
    with pytest.raises(ValueError, match="at least one"):
        Slots("/dev/shm", NAME, 0)
