"""How a verb talks: numbered steps as it goes, one summary line at the end, and on failure one
line with the step and the reason (plus the evidence, such as a container's last log lines)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


class OpsError(Exception):
    """A verb cannot go on. The message is the reason, for the operator; `details` (log lines,
    say) are printed under it."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details

    def evidence(self) -> str:
        """The last line of `details` (a failed command's own last word), else the message."""
        lines = self.details.strip().splitlines()
        return lines[-1] if lines else str(self)


class Console:
    def __init__(self, verb: str, steps: Sequence[str], stream=None) -> None:
        self.verb = verb
        self.steps = list(steps)
        self.stream = stream or sys.stdout
        self.started = time.monotonic()
        self.current: str | None = None

    def say(self, text: str) -> None:
        print(f"{self.verb}: {text}", file=self.stream, flush=True)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Announce step `name` ([n/total] name ...); errors raised inside carry its name."""
        self.current = name
        number = self.steps.index(name) + 1
        self.say(f"[{number}/{len(self.steps)}] {name}")
        yield

    def note(self, text: str) -> None:
        """A detail of the current step, indented under it."""
        print(f"    {text}", file=self.stream, flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def done(self, summary: str) -> None:
        self.say(f"done in {self.elapsed():.1f} s: {summary}")


def fail(verb: str, step: str | None, error: OpsError) -> int:
    where = f" at {step}" if step else ""
    print(f"{verb}: failed{where}: {error}", file=sys.stderr, flush=True)
    if error.details:
        for line in error.details.rstrip().splitlines():
            print(f"    {line}", file=sys.stderr)
    return 1
