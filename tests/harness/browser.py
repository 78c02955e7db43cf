"""Debian's Chromium in a container, driven from the host by Playwright over CDP.

The host needs no browser: the image is built from the web image's own base (Debian) with
Debian's chromium package. The container shares the host's network, so the browser reaches
the stack at the same loopback addresses the tests use, and `share` folders appear at the
same paths (file uploads name host paths).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.harness import REPO
from tests.harness.base_images import dockerfile_base
from tests.harness.containers import Containers
from tests.harness.docker import docker
from tests.harness.polling import wait_until
from tests.harness.ports import free_port

IMAGE = "catcollector-test/chromium:latest"
BUILD_TIMEOUT_S = 900
START_TIMEOUT_S = 60
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--user-data-dir=/tmp/chromium-profile",
)  # fmt: skip


def build() -> str:
    """The browser image (cached by the engine after the first build)."""
    base = dockerfile_base(REPO, "Dockerfile")
    dockerfile = (
        f"FROM {base}\n"
        "RUN apt-get update && apt-get install --yes --no-install-recommends chromium "
        "fonts-dejavu-core && rm -rf /var/lib/apt/lists/*\n"
    )
    docker("build", "--quiet", "--tag", IMAGE, "-", input=dockerfile, timeout=BUILD_TIMEOUT_S)
    return IMAGE


@contextmanager
def chromium(containers: Containers, share: Sequence[Path] = ()) -> Iterator[str]:
    """A running headless Chromium; yields its CDP endpoint for `connect_over_cdp`."""
    port = free_port()
    mounts = [arg for folder in share for arg in ("--volume", f"{folder}:{folder}:ro")]
    containers.run(
        build(),
        "chromium", *FLAGS, f"--remote-debugging-port={port}", "about:blank",
        options=["--network", "host", "--shm-size", "256m", *mounts],
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: requests.get(f"{endpoint}/json/version", timeout=2).ok,
        START_TIMEOUT_S,
        what="Chromium's DevTools endpoint",
    )
    yield endpoint
