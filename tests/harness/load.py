"""Load from threads, bounded: the one way tests run clients beside what they observe.

    with Threads(visit, visit, write) as stop:
        ...  # the clients loop until `stop` is set (each loop should also bound its own time)

Each target is called with the `stop` event; leaving the block sets it and joins the threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

JOIN_TIMEOUT_S = 30


class Threads:
    def __init__(self, *targets: Callable[[threading.Event], object]) -> None:
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=target, args=(self.stop,)) for target in targets]

    def __enter__(self) -> threading.Event:
        for thread in self.threads:
            thread.start()
        return self.stop

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=JOIN_TIMEOUT_S)
