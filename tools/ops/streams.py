"""Commands whose output or input is too large to hold in memory: a dump streamed out of the db
container into an archive, an archive's member streamed into pg_restore or a one-off container.

stdout comes back as chunks while the command runs; stdin is fed from an iterator of chunks by
a thread of its own (a command may stop reading early, as `pg_restore --list` does); stderr
goes to a temporary file, so no pipe can fill up and block. Every command is bounded in time,
and killed when the caller stops early (an error, Ctrl-C).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator

from tools.ops.console import OpsError
from tools.ops.project import Project

CHUNK = 1 << 20
STREAM_TIMEOUT_S = 3600


def _feed(process: subprocess.Popen, source: Iterable[bytes]) -> None:
    try:
        for chunk in source:
            process.stdin.write(chunk)
    except (BrokenPipeError, ValueError):
        pass  # the command stopped reading: its exit status says whether that was fine
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()


def stream(
    project: Project,
    command: list[str],
    *,
    what: str,
    source: Iterable[bytes] | None = None,
    timeout: float = STREAM_TIMEOUT_S,
) -> Iterator[bytes]:
    """Yield `command`'s stdout in chunks; raise OpsError (with its last stderr lines) if it
    exits non-zero, after the last chunk."""
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                command, cwd=project.directory, env=os.environ.copy(),
                stdin=subprocess.PIPE if source is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=errors,
            )  # fmt: skip
        except FileNotFoundError:
            raise OpsError(f"{command[0]} is not installed (this VM needs Docker)") from None
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        feeder = None
        if source is not None:
            feeder = threading.Thread(target=_feed, args=(process, source), daemon=True)
            feeder.start()
        try:
            while chunk := process.stdout.read(CHUNK):
                yield chunk
            process.wait()
            if feeder is not None:
                feeder.join()
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        if process.returncode != 0:
            errors.seek(0)
            lines = errors.read().decode(errors="replace").strip().splitlines()
            reason = "timed out" if process.returncode == -9 else f"exit {process.returncode}"
            raise OpsError(f"{what} failed ({reason})", "\n".join(lines[-15:]))


def output(project: Project, command: list[str], **kwargs) -> bytes:
    """All of `command`'s stdout (for small outputs), streaming its stdin from `source`."""
    return b"".join(stream(project, command, **kwargs))
