"""A command run on a terminal of its own, its prompts answered as an operator types them: for
documented commands that ask (Django's createsuperuser through `docker compose run`), tested as
written rather than with flags that skip the questions."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.harness.docker import clean_env


def answered(
    command: Sequence[str], cwd: Path, answers: Sequence[tuple[str, str]], timeout: float
) -> tuple[int, str]:
    """Run `command` on a pseudo-terminal; each time the next prompt of `answers` (prompt,
    reply) shows, type its reply and Enter. Returns (exit status, everything it printed)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        list(command), cwd=cwd, env=clean_env({"TERM": "dumb"}), stdin=follower,
        stdout=follower, stderr=follower, start_new_session=True,
    )  # fmt: skip
    os.close(follower)
    printed, seen_up_to, pending = b"", 0, list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the terminal closed: the command ended
                    break
                if not chunk:
                    break
                printed += chunk
            if pending and pending[0][0].encode() in printed[seen_up_to:]:
                seen_up_to = len(printed)
                os.write(leader, pending.pop(0)[1].encode() + b"\r")
            elif not ready and process.poll() is not None:
                break
        else:
            process.kill()
            raise AssertionError(f"{' '.join(command)} still running after {timeout} s:\n"
                                 f"{printed.decode(errors='replace')}")  # fmt: skip
        return process.wait(timeout=30), printed.decode(errors="replace")
    finally:
        os.close(leader)
