"""A fixed number of slots shared by every process and thread of a container: N files,
`<directory>/<name>.<i>`, each held with flock() by at most one holder at a time.

Why flock() on a fresh open() per attempt: the lock belongs to the open file description, so
a second thread of the same process opening the file again is refused like another process
(POSIX record locks, lockf/F_SETLK, are per process and would let every thread of a gthread
worker in). The kernel drops the lock when its holder's descriptor closes, which includes the
holder dying by SIGKILL (gunicorn's timeout, the OOM killer): a slot is never lost, unlike a
POSIX semaphore, which a killed holder keeps forever. The files live on tmpfs (/dev/shm) and
are never written: they cost an inode each.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

POLL_INTERVAL_S = 0.05


class NoSlotFree(Exception):
    """Every slot stayed taken for the whole wait."""


class Slots:
    def __init__(self, directory: Path | str, name: str, count: int) -> None:
        if count < 1:
            raise ValueError(f"{count} slots: at least one is needed")
        self.paths = [Path(directory) / f"{name}.{i}" for i in range(count)]

    def hold(self, wait_s: float) -> Held:
        """A context manager holding one slot: `with slots.hold(5): ...`. Waits up to `wait_s`
        seconds for a slot, polling; raises NoSlotFree after that."""
        deadline = time.monotonic() + wait_s
        while True:
            for index, path in enumerate(self.paths):
                descriptor = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(descriptor)
                    continue
                except BaseException:
                    os.close(descriptor)
                    raise
                return Held(index, descriptor)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoSlotFree(f"all {len(self.paths)} slots stayed taken for {wait_s} s")
            time.sleep(min(POLL_INTERVAL_S, remaining))


class Held:
    """One slot, held until close() (or the end of the `with` block)."""

    def __init__(self, index: int, descriptor: int) -> None:
        self.index = index
        self._descriptor: int | None = descriptor

    def close(self) -> None:
        if self._descriptor is not None:
            # Closing the only descriptor of the open file releases the lock.
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
