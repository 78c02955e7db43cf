"""Waiting for something observable, bounded in time: the one polling loop tests use."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import requests

POLL_INTERVAL_S = 0.5
T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    timeout: float,
    interval: float = POLL_INTERVAL_S,
    what: str = "",
) -> T:
    """Poll `condition` until it returns something truthy and return that; fail after
    `timeout` seconds, naming `what` and the last error a poll raised."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = condition()
        except (requests.RequestException, AssertionError, OSError) as error:
            last_error, result = error, None
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"not within {timeout}s: {what or condition}; last error: {last_error}"
            )
        time.sleep(interval)
