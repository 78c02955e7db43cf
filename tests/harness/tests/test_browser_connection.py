"""The load's one resend is a browser's: a GET on a reused connection closed before any byte of
an answer, once. Everything else a visitor would see as failed raises."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.harness.browser_connection import BrowserConnection

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def scripted_server(script: list[list[str]]) -> Iterator[int]:
    """A server on loopback: connection i plays script[i], one action per request it reads:
    'answer' (200, kept alive), 'close' (closes unanswered), 'partial' (the status line, then
    closes). Yields its port; connections beyond the script are closed at once."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        for actions in [*script, []]:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                for action in actions:
                    if not connection.recv(65536):
                        break
                    if action == "answer":
                        connection.sendall(OK)
                    elif action == "partial":
                        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nok")
                        break
                    else:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def server(request) -> Iterator[int]:
    yield from scripted_server(request.param)


def connect(port: int) -> BrowserConnection:
    return BrowserConnection("127.0.0.1", port, timeout=5)


@pytest.mark.parametrize("server", [[["answer", "close"], ["answer"]]], indirect=True)
def test_a_get_on_a_reused_connection_closed_unanswered_is_resent_once(server):
    browser = connect(server)
    assert browser.request("GET", "/", {}).status == 200
    assert browser.request("GET", "/", {}).status == 200
    assert browser.resent == 1


@pytest.mark.parametrize("server", [[["close"]]], indirect=True)
def test_a_new_connection_closed_unanswered_is_a_failure(server):
    browser = connect(server)
    with pytest.raises(http.client.RemoteDisconnected):
        browser.request("GET", "/", {})
    assert browser.resent == 0


def test_a_refused_connection_is_a_failure():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    browser = connect(port)
    with pytest.raises(ConnectionRefusedError):
        browser.request("GET", "/", {})
    assert browser.resent == 0


@pytest.mark.parametrize("server", [[["answer", "close"], ["answer"]]], indirect=True)
def test_a_post_is_never_resent(server):
    browser = connect(server)
    assert browser.request("GET", "/", {}).status == 200
    with pytest.raises(http.client.RemoteDisconnected):
        browser.request("POST", "/", {"Content-Length": "0"})
    assert browser.resent == 0


@pytest.mark.parametrize("server", [[["answer", "partial"], ["answer"]]], indirect=True)
def test_a_close_after_the_answer_began_is_a_failure(server):
    browser = connect(server)
    assert browser.request("GET", "/", {}).status == 200
    with pytest.raises(http.client.IncompleteRead):
        browser.request("GET", "/", {})
    assert browser.resent == 0


@pytest.mark.parametrize("server", [[["answer", "close"], ["close"]]], indirect=True)
def test_the_resend_is_sent_once(server):
    browser = connect(server)
    assert browser.request("GET", "/", {}).status == 200
    with pytest.raises(http.client.RemoteDisconnected):
        browser.request("GET", "/", {})
    assert browser.resent == 1
