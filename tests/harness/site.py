"""A site folder shaped like the one scripts/publish_release.py fills, with this checkout's
nginx templates as the active release, for running the nginx image without a web image (the
lint layer's `nginx -t`, tests/stack/test_nginx_image.py).

CLI: python -m tests.harness.site FOLDER [VERSION]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.harness import REPO

TEMPLATES = REPO / "nginx" / "templates"


def active_release(site: Path, version: str = "test") -> Path:
    release = site / "releases" / version
    shutil.copytree(TEMPLATES, release / "nginx")
    (site / "static").mkdir(parents=True, exist_ok=True)
    (site / "current").symlink_to(Path("releases") / version)
    for path in (site, *site.rglob("*")):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return site


if __name__ == "__main__":
    active_release(Path(sys.argv[1]), *sys.argv[2:3])
