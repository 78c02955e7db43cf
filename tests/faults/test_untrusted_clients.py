"""A client outside the trusted proxy ranges cannot choose its address, scheme or request id.

The client runs in a container on a network of our own with a public-looking subnet
(support.PUBLIC_SUBNET), attached to nginx, so nginx sees a public source address, as it would
for a visitor reaching the VM directly. The tests share a stack (conftest): nginx joins the
network for one test and leaves it afterwards."""

import re
import uuid
from collections.abc import Iterator

import pytest

from tests.stack.support import (
    CURL_IMAGE,
    OUTSIDER_ADDRESS,
    SITE_HOST,
    never_reached_web,
    public_network,
)

# A stack set up for production: its hosts named (docs/operations.md, Quickstart), so a
# request for another host is dropped without an answer.
STACK_ENV = {"DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1"}


@pytest.fixture
def outside(shared_stack, run_id) -> Iterator[tuple[str, str]]:
    """(network name, nginx's address on it); nginx leaves the network afterwards."""
    with public_network(shared_stack, run_id) as network:
        yield network


def request_from_outside(containers, network: str, url: str, headers: dict) -> dict:
    """curl from OUTSIDER_ADDRESS; returns the status and response headers."""
    header_args = [arg for k, v in headers.items() for arg in ("--header", f"{k}: {v}")]
    result = containers.run_once(
        CURL_IMAGE, "--silent", "--show-error", "--dump-header", "-", "--output", "/dev/null",
        *header_args, url,
        options=["--network", network, "--ip", OUTSIDER_ADDRESS, "--entrypoint", "curl"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    status_line, *lines = result.stdout.strip().splitlines()
    fields = dict(line.split(": ", 1) for line in lines if ": " in line)
    return {"status": int(status_line.split()[1]), **{k.lower(): v for k, v in fields.items()}}


def test_spoofed_forwarding_headers_are_replaced(shared_stack, containers, outside):
    network, nginx_address = outside
    forged_id = f"forged-{uuid.uuid4().hex}"
    answer = request_from_outside(
        containers,
        network,
        f"http://{nginx_address}:8080/api/cats/",
        {
            "Host": SITE_HOST,
            "X-Forwarded-For": "10.9.8.7",
            "X-Forwarded-Proto": "https",
            "X-Request-ID": forged_id,
            "X-Forwarded-Host": "evil.example",
        },
    )
    # Django saw plain HTTP (its redirect to HTTPS), not the claimed https, and the real host.
    assert answer["status"] == 301
    assert answer["location"] == "https://localhost/api/cats/"
    request_id = answer["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)

    [nginx_line] = shared_stack.nginx_lines(lambda r: r["request_id"] == request_id)
    assert nginx_line["remote_addr"] == nginx_line["peer"] == OUTSIDER_ADDRESS
    [web_line] = shared_stack.json_lines(
        "web", lambda r: r.get("request_id") == request_id and r["logger"] == "gunicorn.access"
    )
    assert web_line["remote_addr"] == OUTSIDER_ADDRESS
    assert forged_id not in shared_stack.logs("web")
    assert forged_id not in shared_stack.logs("nginx")


def test_unknown_hosts_are_dropped_for_outsiders_too(shared_stack, containers, outside):
    network, nginx_address = outside
    marker = f"/dropped-{uuid.uuid4().hex}/"
    result = containers.run_once(
        CURL_IMAGE, "--silent", "--header", "Host: attacker.example",
        f"http://{nginx_address}:8080{marker}",
        options=["--network", network, "--ip", OUTSIDER_ADDRESS, "--entrypoint", "curl"],
    )  # fmt: skip
    # curl: empty reply (52) or connection reset (56); either way not one byte of an answer.
    assert (result.returncode, result.stdout) in ((52, ""), (56, ""))
    [line] = shared_stack.nginx_lines(lambda r: r["path"] == marker)
    assert (line["status"], line["peer"]) == (444, OUTSIDER_ADDRESS)
    assert never_reached_web(line)
