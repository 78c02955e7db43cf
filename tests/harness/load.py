"""Load from threads, bounded: the one way tests run clients beside what they observe.

    with Threads(visit, visit, write) as stop:
        ...  # the clients loop until `stop` is set (each loop should also bound its own time)

Each target is called with the `stop` event; leaving the block sets it and joins the threads.
Nothing a client does can go unseen: a target that raised fails the block with its exception,
and a target still running JOIN_TIMEOUT_S after the stop fails it too (a sample it was taking
would otherwise be missing from the statistics, silently).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

JOIN_TIMEOUT_S = 30


class ClientFailed(AssertionError):
    """A load thread raised, or did not stop in time."""


class Threads:
    def __init__(self, *targets: Callable[[threading.Event], object]) -> None:
        self.stop = threading.Event()
        self.errors: list[tuple[str, BaseException]] = []
        self.threads = [
            threading.Thread(target=self._guarded, args=(target,), name=f"{_name(target)}-{i}")
            for i, target in enumerate(targets)
        ]

    def _guarded(self, target: Callable[[threading.Event], object]) -> None:
        try:
            target(self.stop)
        except BaseException as error:  # reported by __exit__, whatever it was
            self.errors.append((threading.current_thread().name, error))
            self.stop.set()

    def __enter__(self) -> threading.Event:
        for thread in self.threads:
            thread.start()
        return self.stop

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        self.stop.set()
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if exc_type is not None:
            return  # the block's own failure comes first
        unfinished = [thread.name for thread in self.threads if thread.is_alive()]
        if unfinished:
            raise ClientFailed(
                f"load threads still running {JOIN_TIMEOUT_S} s after the stop: {unfinished}"
            )
        if self.errors:
            name, first = self.errors[0]
            others = "; ".join(f"{n}: {type(e).__name__}: {e}" for n, e in self.errors[1:])
            raise ClientFailed(
                f"load thread {name} raised {type(first).__name__}: {first}"
                + (f" (also {others})" if others else "")
            ) from first


def _name(target: Callable) -> str:
    return getattr(target, "__name__", type(target).__name__)
