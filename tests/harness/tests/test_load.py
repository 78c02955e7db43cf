"""Load threads cannot fail unseen: a client that raised, or that never stopped, fails the
block that ran it."""

import threading
import time

import pytest

from tests.harness import load
from tests.harness.load import ClientFailed, Threads


def test_a_client_that_raises_fails_the_block_and_stops_the_others():
    stopped = threading.Event()

    def broken(stop: threading.Event) -> None:
        raise TimeoutError("probe timed out")

    def patient(stop: threading.Event) -> None:
        stop.wait(10)
        stopped.set()

    with (
        pytest.raises(ClientFailed, match="raised TimeoutError: probe timed out"),
        Threads(broken, patient),
    ):
        assert stopped.wait(5), "the other client was not told to stop"


def test_a_client_that_never_stops_fails_the_block(monkeypatch):
    monkeypatch.setattr(load, "JOIN_TIMEOUT_S", 0.2)
    release = threading.Event()

    def stuck(stop: threading.Event) -> None:
        release.wait(5)

    try:
        with pytest.raises(ClientFailed, match="still running"), Threads(stuck):
            pass
    finally:
        release.set()


def test_clients_that_end_well_pass():
    samples = []

    def sample(stop: threading.Event) -> None:
        while not stop.is_set():
            samples.append(1)
            time.sleep(0.01)

    with Threads(sample, sample):
        time.sleep(0.1)
    assert samples
