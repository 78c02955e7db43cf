"""The files through which gunicorn's processes share their metrics, kept few.

prometheus-client's multiprocess mode gives each process its own files in
PROMETHEUS_MULTIPROC_DIR (`counter_<pid>.db`, `histogram_<pid>.db`, `gauge_livesum_<pid>.db`)
and sums them all at every scrape. It never removes a dead process's counters and histograms,
since the totals would go backwards; with a worker replaced every GUNICORN_MAX_REQUESTS
requests the folder would grow by a few files each time (client_python#275), each taking
memory on the tmpfs and time at every scrape, which reads them all. So when gunicorn's master
has reaped a worker (its child_exit hook, before it forks the next), worker_exited() folds
that worker's counter and histogram files into one archive per type (`counter_archive.db`...)
and deletes them: the totals stay exact and the folder holds about three files per live
worker.

A scrape that read the folder while a fold replaced its files could count a worker twice or
not at all, so both lock LOCK_FILE: a scrape shared, a fold exclusive. The master waits at
most FOLD_WAIT_S for it; failing that, that worker's files stay, still counted (a stuck scrape
must never stop the master, and a later fold cannot take them: their pid may be a new
worker's by then).

Files of size 0 are left out of a scrape: a process creates its file empty and sizes it a
moment later, and prometheus-client fails the whole scrape on reading one (client_python#1199).
"""

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

logger = logging.getLogger(__name__)

LOCK_FILE = "lock"
# The types whose values outlive their process (live gauges go with it: mark_process_dead).
FOLDED_TYPES = ("counter", "histogram", "summary")
FOLD_WAIT_S = 1.0


def directory() -> Path | None:
    """The folder the entrypoint gives gunicorn (scripts/entrypoint); None outside it, where
    each process keeps its metrics in memory."""
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


@contextmanager
def _locked(folder: Path, operation: int, wait_s: float | None = None) -> Iterator[bool]:
    """Hold the folder's lock (True); with `wait_s`, give up after that long (False)."""
    fd = os.open(folder / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        yield _acquire(fd, operation, wait_s)
    finally:
        os.close(fd)  # and with it the lock


def _acquire(fd: int, operation: int, wait_s: float | None) -> bool:
    if wait_s is None:
        fcntl.flock(fd, operation)
        return True
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


class FolderCollector(MultiProcessCollector):
    """prometheus-client's collector for the folder, under the shared lock, without empty
    files."""

    def collect(self):
        folder = Path(self._path)
        with _locked(folder, fcntl.LOCK_SH):
            files = []
            for path in folder.glob("*.db"):
                try:
                    if path.stat().st_size:
                        files.append(str(path))
                except FileNotFoundError:
                    pass  # a live gauge's file, its process just marked dead
            return self.merge(files, accumulate=True)


def worker_exited(folder: Path, pid: int) -> None:
    """What gunicorn's master does for a worker it has reaped: the worker's live gauges go
    (its requests in progress, its threads), its counters and histograms join the archives.
    Never raises: an exception in a gunicorn hook stops the master."""
    try:
        mark_process_dead(pid, str(folder))
        with _locked(folder, fcntl.LOCK_EX, wait_s=FOLD_WAIT_S) as locked:
            if not locked:
                logger.warning("metrics: worker %s not folded, a scrape held the lock", pid)
                return
            for kind in FOLDED_TYPES:
                _fold(folder, kind, pid)
    except Exception:
        logger.exception("metrics: worker %s's files could not be folded", pid)


def _fold(folder: Path, kind: str, pid: int) -> None:
    dead = folder / f"{kind}_{pid}.db"
    if not dead.exists():
        return
    if dead.stat().st_size:
        archive = folder / f"{kind}_archive.db"
        sources = [str(path) for path in (archive, dead) if path.exists()]
        # The new archive is written through a memory map: on a full tmpfs that would kill
        # the master (SIGBUS) rather than fail. It takes at most the two files' sizes.
        stats = os.statvfs(folder)
        if stats.f_bavail * stats.f_frsize < sum(os.path.getsize(path) for path in sources):
            logger.warning("metrics: worker %s not folded, %s is full", pid, folder)
            return
        # Not accumulated: buckets stay per bucket, as the files hold them.
        metrics = MultiProcessCollector.merge(sources, accumulate=False)
        # Written under a name no scrape reads (not *.db), then put in place at once.
        new = folder / f"{kind}_archive.new"
        new.unlink(missing_ok=True)
        merged = MmapedDict(str(new))
        try:
            for metric in metrics:
                for sample in metric.samples:
                    key = mmap_key(
                        metric.name,
                        sample.name,
                        list(sample.labels),
                        list(sample.labels.values()),
                        metric.documentation,
                    )
                    merged.write_value(key, sample.value, 0.0)
        finally:
            merged.close()
        new.replace(archive)
    dead.unlink()
