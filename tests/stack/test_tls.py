"""TLS at nginx (compose.tls.yaml): the scheme Django sees is the connection's when the
connection to nginx is TLS, and the trusted hop's claim only over plain HTTP.

The tests share one stack (conftest): they only read."""

from collections.abc import Iterator

import pytest
import requests
import urllib3

from tests.harness.ports import free_port
from tests.harness.tls import self_signed_certificate as make_certificate
from tests.stack.support import REQUEST_TIMEOUT_S, SITE_HOST, Stack, running_stack


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
