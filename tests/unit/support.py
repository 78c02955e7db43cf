"""Helpers shared by the unit tests."""

import io
import os
import subprocess
import sys

from PIL import Image

from tests.harness import REPO

SITE_HOST = "cats.example.com"


def run_python(*args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()):
    """Run the repo's Python in a fresh process with the test environment, plus `env`,
    minus the names in `unset`."""
    environ = {k: v for k, v in os.environ.items() if k not in unset} | (env or {})
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def image_bytes(format_: str = "PNG", size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, format=format_)
    return buffer.getvalue()
