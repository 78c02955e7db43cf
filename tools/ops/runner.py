"""The one way a verb runs a command: in the project's folder, never with the operator's stdin,
bounded in time, and failing as an OpsError that names what was being done.

`run` captures a command's output whole (small outputs). `stream` is for output or input too
large to hold in memory (a dump streamed out of the db container into an archive, an archive's
member streamed into pg_restore): stdout comes back as chunks while the command runs; stdin is
fed from an iterator of chunks by a thread of its own (a command may stop reading early, as
`pg_restore --list` does); stderr goes to a temporary file, so no pipe can fill up and block.
A streamed command is killed when the caller stops early (an error, Ctrl-C).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from tools.ops.console import OpsError

COMMAND_TIMEOUT_S = 900
STREAM_TIMEOUT_S = 3600
CHUNK = 1 << 20
# Lines of a failed command's output kept as the error's details.
DETAIL_LINES = 15


class Runner:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def run(
        self,
        command: list[str],
        *,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT_S,
        what: str = "",
    ) -> subprocess.CompletedProcess[str]:
        what = what or " ".join(command[:3])
        try:
            result = subprocess.run(
                command,
                cwd=self.directory,
                env={**os.environ, **(env or {})},
                # Never the operator's: `compose run` would forward it to the container, and
                # the prompt of `./ops restore` reads it.
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError:
            raise OpsError(f"{command[0]} is not installed (this VM needs Docker)") from None
        except subprocess.TimeoutExpired:
            raise OpsError(f"{what} did not finish in {timeout:g} s") from None
        if check and result.returncode != 0:
            message = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise OpsError(
                f"{what} failed (exit {result.returncode})", "\n".join(message[-DETAIL_LINES:])
            )
        return result

    def stream(
        self,
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
                    command, cwd=self.directory, env=os.environ.copy(),
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
                raise OpsError(f"{what} failed ({reason})", "\n".join(lines[-DETAIL_LINES:]))

    def output(self, command: list[str], **kwargs) -> bytes:
        """All of a streamed command's stdout (for small outputs of a streamed input)."""
        return b"".join(self.stream(command, **kwargs))


def _feed(process: subprocess.Popen, source: Iterable[bytes]) -> None:
    try:
        for chunk in source:
            process.stdin.write(chunk)
    except (BrokenPipeError, ValueError):
        pass  # the command stopped reading: its exit status says whether that was fine
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
