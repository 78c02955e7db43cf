"""A load balancer in front of the stack, as users run one: HAProxy with its default settings.

Only what HAProxy cannot start without, or what docs/operations.md tells a balancer to do, is
set: HTTP mode, the three timeouts (HAProxy has none by default), and a health check of each
VM on `/readyz`. With `https=True` it plays a balancer that ends TLS for the visitors, as cloud
ones do: it says so in `X-Forwarded-Proto: https` and passes the client's address in
`X-Forwarded-For` (the tests' visitors then speak plain HTTP to it). Retries, connection reuse
and the check's timing stay HAProxy's defaults (`retries 3`, `retry-on conn-failure`,
`http-reuse safe`, a check every 2 s, down after 3 failed ones), so a test through it sees what
a visitor behind an untuned balancer sees.

It runs in a container on the host's network (it reaches the VMs' published ports on
loopback, or the nodes' addresses), labelled with the run id like everything tests start. Its
access log (one line per request, HAProxy's `httplog` format) and a CSV of its servers' states
are there to read.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.harness import REPO
from tests.harness.base_images import dockerfile_base
from tests.harness.containers import Container, Containers
from tests.harness.docker import build_image
from tests.harness.polling import wait_until
from tests.harness.ports import free_port

IMAGE = "catcollector-test/balancer:latest"
CONTEXT = Path(__file__).parent / "balancer"
# The probe docs/operations.md points a balancer at.
HEALTH_CHECK = "/readyz"
# Where the balancer, and the tests' clients that stand where it stands, reach nginx from: the
# gateway of a Docker bridge network, in Docker's default address pools (172.17-31.0.0/16, then
# 192.168.0.0/16 once those are taken), for a port published on loopback. The tests name it as an
# operator names their balancer (`./ops init --balancer`, NGINX_TRUSTED_PROXIES).
BRIDGES = "172.16.0.0/12,192.168.0.0/16"
# HAProxy refuses to guess these; generous, so they never decide a test.
TIMEOUTS = {"connect": "5s", "client": "60s", "server": "60s"}
UP_BOUND_S = 60
TLS_ENDS_HERE = """\
    option forwardfor
    http-request set-header X-Forwarded-Proto https
"""

CONFIG = """\
global
    log stdout format raw local0
defaults
    mode http
    log global
    option httplog
    timeout connect {connect}
    timeout client {client}
    timeout server {server}
frontend site
    bind 127.0.0.1:{port}
{tls_ends_here}    default_backend vms
frontend stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
backend vms
    option httpchk GET {check}
{servers}
"""


def image() -> str:
    """The balancer's image, built on the nginx image's base (cached after the first build)."""
    base = dockerfile_base(REPO, "nginx/Dockerfile", named_contexts=frozenset({"web"}))
    build_image(CONTEXT, IMAGE, build_args={"BASE": base})
    return IMAGE


class Balancer:
    def __init__(self, container: Container, port: int, stats_port: int) -> None:
        self.container = container
        self.port = port
        self.stats_port = stats_port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def servers(self) -> dict[str, str]:
        """Each VM's state as the balancer sees it: UP, DOWN, 'UP 1/2' (rising)..."""
        answer = requests.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5)
        answer.raise_for_status()
        rows = csv.DictReader(io.StringIO(answer.text.lstrip("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == "vms" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_up(self, count: int) -> None:
        wait_until(
            lambda: sum(state == "UP" for state in self.servers().values()) >= count,
            UP_BOUND_S,
            interval=0.2,
            what=f"{count} VM(s) up behind the balancer",
        )

    def access_lines(self) -> list[str]:
        return [line for line in self.container.logs().splitlines() if " vms/" in line]


@contextmanager
def balancer(
    run_id: str,
    owner: str,
    targets: Sequence[tuple[str, int]],
    *,
    healthy: int | None = None,
    https: bool = False,
) -> Iterator[Balancer]:
    """HAProxy in front of `targets` (address, port), once `healthy` of them (default: all)
    pass the health check (0: once it answers its stats page); removed afterwards."""
    port, stats_port = free_port(), free_port()
    servers = "\n".join(
        f"    server vm{number} {address}:{target_port} check"
        for number, (address, target_port) in enumerate(targets, start=1)
    )
    config = CONFIG.format(
        port=port, stats_port=stats_port, check=HEALTH_CHECK, servers=servers,
        tls_ends_here=TLS_ENDS_HERE if https else "", **TIMEOUTS,
    )  # fmt: skip
    containers = Containers(run_id, owner)
    with tempfile.TemporaryDirectory(prefix="balancer-") as folder:
        (Path(folder) / "haproxy.cfg").write_text(config)
        Path(folder).chmod(0o755)
        try:
            container = containers.run(
                image(),
                options=["--network", "host", "--volume", f"{folder}:/etc/balancer:ro"],
            )
            running = Balancer(container, port, stats_port)
            running.wait_up(len(targets) if healthy is None else healthy)
            yield running
        finally:
            problems = containers.remove_all()
            if problems:
                raise AssertionError("balancer not removed: " + "; ".join(problems))
