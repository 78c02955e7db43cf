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


def stored_files(root) -> list[str]:
    """Every file under `root`, relative to it, sorted."""
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
    )


def add_cat(client, photo=None, **fields):
    """Post the add-a-cat form (sign in first) with `photo` (an uploaded file) and `fields`."""
    data = {"name": "Mittens", "breed": "Tabby", "age": "4", "description": "Naps.", **fields}
    if photo is not None:
        data["photo"] = photo
    return client.post("/cats/new/", data)


def image_bytes(format_: str = "PNG", size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, format=format_)
    return buffer.getvalue()
