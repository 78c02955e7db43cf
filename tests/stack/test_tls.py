"""TLS at nginx (compose.tls.yaml): the scheme Django sees is the connection's when the
connection to nginx is TLS, and the trusted hop's claim only over plain HTTP.

The tests share one stack (conftest): they only read."""

from collections.abc import Iterator

import pytest
import requests
import urllib3

from tests.harness.ports import free_port
from tests.harness.tls import self_signed_certificate as make_certificate
from tests.stack.support import (
    REQUEST_TIMEOUT_S,
    SITE_HOST,
    Stack,
    never_reached_web,
    running_stack,
)

NGINX_HTTPS_PORT = 8443


@pytest.fixture(scope="module")
def tls_stack(run_id, tmp_path_factory) -> Iterator[tuple[Stack, int]]:
    """(stack, the HTTPS port it publishes on 127.0.0.1)."""
    https_port = free_port()
    env = {
        "HTTPS_BIND": "127.0.0.1",
        "HTTPS_PORT": str(https_port),
        "NGINX_TLS_DIR": str(make_certificate(tmp_path_factory.mktemp("tls") / "certificate")),
    }
    with running_stack(
        f"{run_id}-tls",
        tmp_path_factory.mktemp("stack-env"),
        free_port(),
        env,
        ("compose.yaml", "compose.tls.yaml"),
    ) as stack:
        yield stack, https_port


def over_tls(port: int, path: str, **headers: str) -> requests.Response:
    with urllib3.warnings.catch_warnings():
        urllib3.warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        return requests.get(
            f"https://127.0.0.1:{port}{path}",
            headers={"Host": SITE_HOST, **headers},
            verify=False,  # noqa: S501 # the test's own self-signed certificate
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT_S,
        )


@pytest.mark.parametrize("claimed", [None, "http", "https", "HTTP"])
def test_a_tls_connection_is_https_whatever_a_trusted_hop_claims(tls_stack, claimed):
    """The tests' address is in the trusted ranges: believing its `X-Forwarded-Proto: http`
    over TLS would make Django redirect the request to HTTPS, forever."""
    _, https_port = tls_stack
    headers = {"X-Forwarded-Proto": claimed} if claimed else {}
    response = over_tls(https_port, "/", **headers)
    assert response.status_code == 200, response.headers.get("Location")
    # Django sends HSTS on requests it considers secure only.
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_plain_http_believes_the_trusted_hop(tls_stack):
    stack, _ = tls_stack
    redirected = stack.get("/", https=False, headers={"X-Forwarded-Proto": "http"})
    assert (redirected.status_code, redirected.headers["Location"]) == (301, "https://localhost/")
    assert stack.get("/", headers={"X-Forwarded-Proto": "https"}).status_code == 200


# --- Request limits over HTTP/2 ----------------------------------------------------------------


def http2(stack: Stack, path: str, *headers: str) -> tuple[int, dict[str, str], str]:
    """GET over HTTP/2 with curl in the nginx container (the tests' Python speaks only
    HTTP/1.1): (status, response headers, body)."""
    header_args = [arg for header in (f"Host: {SITE_HOST}", *headers) for arg in ("-H", header)]
    output = stack.exec(
        "nginx", "curl", "--silent", "--insecure", "--http2", "--include", *header_args,
        f"https://127.0.0.1:{NGINX_HTTPS_PORT}{path}",
    )  # fmt: skip
    # (Text output: the CRLFs arrive as newlines.)
    head, _, body = output.partition("\n\n")
    status_line, *lines = head.splitlines()
    assert status_line.startswith("HTTP/2 "), status_line
    fields = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in fields.items()}, body


def test_http2_request_lines_are_bounded_like_http1s(tls_stack):
    """HTTP/2 limits a field by its compressed size: a 10,000-byte path (Huffman-coded in
    about 6 KB) passes nginx's 8k field limit, but would give gunicorn a line over the 8190
    bytes it reads at most. nginx refuses it itself, as it would over HTTP/1.1."""
    stack, _ = tls_stack
    status, headers, body = http2(stack, "/api/cats/?q=" + "a" * 10_000)
    assert status == 414
    assert "Request Line is too large" not in body  # gunicorn's page
    [line] = stack.nginx_lines(lambda r: r["request_id"] == headers["x-request-id"])
    assert line["status"] == 414
    assert never_reached_web(line)
    # Just under gunicorn's limit: the app answers.
    path = "/api/cats/?q=" + "a" * (8190 - len("GET /api/cats/?q= HTTP/1.1"))
    assert http2(stack, path)[0] == 200


def test_http2_header_lines_nginx_takes_reach_the_app(tls_stack):
    """A 12,000-byte header (about 7.5 KB compressed) passes nginx over HTTP/2, and so does a
    cookie sent in many fields, which nginx joins into one Cookie line for gunicorn."""
    stack, _ = tls_stack
    status, headers, _ = http2(stack, "/api/cats/", "X-Long: " + "a" * 12_000)
    assert status == 200
    [line] = stack.json_lines(
        "web", lambda r: r.get("request_id") == headers["x-request-id"] and "status" in r
    )
    assert line["status"] == 200
    crumbs = [f"Cookie: c{i}={'a' * 4000}" for i in range(6)]
    assert http2(stack, "/api/cats/", *crumbs)[0] == 200
