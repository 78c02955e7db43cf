"""The ops load's one resend: only for a kept-alive connection closed before any answer."""

import socket
import threading

import pytest
import requests

from tests.ops.traffic import closed_unanswered


def failure_from(server_closes: bool) -> requests.ConnectionError:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if server_closes:

        def close_unanswered() -> None:
            connection, _ = listener.accept()
            connection.recv(1)
            connection.close()

        threading.Thread(target=close_unanswered, daemon=True).start()
    else:
        listener.close()
    with pytest.raises(requests.ConnectionError) as caught:
        requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    listener.close()
    return caught.value


def test_a_connection_closed_before_any_answer_is_resent():
    assert closed_unanswered(failure_from(server_closes=True))


def test_a_refused_connection_is_a_failure():
    assert not closed_unanswered(failure_from(server_closes=False))
