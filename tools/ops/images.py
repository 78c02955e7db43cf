"""The images a verb runs: which version to deploy, whether its images are on this VM, and
building, pulling and pruning them.

The web image is the release (code, static files, nginx templates) and carries the app's
version; the nginx image is the proxy and carries a version of its own, a digest of nginx/
(templates aside), so a release that leaves the proxy alone reuses the running nginx container.
Image names come from compose.yaml (WEB_IMAGE, NGINX_IMAGE), resolved by compose itself.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from tools.ops.console import OpsError
from tools.ops.project import Project

from config.release import VERSION_PATTERN

PROXY_DIR = "nginx"
# Part of the release (the web image copies them), not of the proxy.
PROXY_EXCLUDED = ("templates",)


def check_version(version: str) -> str:
    if not VERSION_PATTERN.fullmatch(version):
        raise OpsError(
            f"{version!r} is not a version this stack can run: use lowercase letters, digits, "
            "dots and dashes, starting with a letter or digit (it becomes an image tag and a "
            "network alias)"
        )
    return version


def checkout_version(directory: Path) -> str:
    """The version of the code in this checkout, from git: the nearest tag and the commits
    since, or the commit. A checkout with uncommitted changes has no version of its own."""
    try:
        described = subprocess.run(
            ["git", "describe", "--tags", "--always", "--dirty"],
            cwd=directory, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        raise OpsError(
            f"{directory} is not a git checkout, so it has no version; name one: "
            "./ops deploy VERSION --build"
        ) from None
    if described.endswith("-dirty"):
        raise OpsError(
            "the checkout has uncommitted changes; commit them, or name a version: "
            "./ops deploy VERSION --build"
        )
    return check_version(described.lower())


def proxy_version(directory: Path) -> str:
    """A digest of what goes into the nginx image: its files, names and modes."""
    root = directory / PROXY_DIR
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or relative.parts[0] in PROXY_EXCLUDED:
            continue
        digest.update(f"{relative.as_posix()}:{path.stat().st_mode & 0o111:o}\n".encode())
        digest.update(path.read_bytes())
    return f"proxy-{digest.hexdigest()[:12]}"


class Images:
    def __init__(self, project: Project) -> None:
        self.project = project

    def names(self, app_version: str, nginx_version: str) -> dict[str, str]:
        """{'web': 'catcollector/web:1.2', 'nginx': ...} as compose.yaml resolves them."""
        config = self.project.compose(
            "config", "--format", "json",
            env={"APP_VERSION": app_version, "NGINX_VERSION": nginx_version},
            what="docker compose config",
        ).stdout  # fmt: skip
        services = json.loads(config)["services"]
        return {name: services[name]["image"] for name in ("web", "nginx")}

    def exists(self, image: str) -> bool:
        return self.project.docker("image", "inspect", image, check=False).returncode == 0

    def image_id(self, image: str) -> str | None:
        result = self.project.docker("image", "inspect", "--format", "{{.Id}}", image, check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    def build(self, service: str, app_version: str, nginx_version: str) -> None:
        self.project.compose(
            "build", service,
            env={"APP_VERSION": app_version, "NGINX_VERSION": nginx_version},
            what=f"building the {service} image",
        )  # fmt: skip

    def pull(self, service: str, app_version: str, nginx_version: str) -> None:
        self.project.compose(
            "pull", service,
            env={"APP_VERSION": app_version, "NGINX_VERSION": nginx_version},
            what=f"pulling the {service} image",
        )  # fmt: skip

    def local_versions(self, image: str) -> list[str]:
        """Tags of `image`'s repository on this VM, newest first."""
        repository = image.rsplit(":", 1)[0]
        listed = self.project.docker(
            "image", "ls", "--format", "{{.Tag}}", repository, what="listing images"
        ).stdout.split()
        return [tag for tag in listed if tag != "<none>"]

    def remove(self, image: str) -> bool:
        return self.project.docker("image", "rm", image, check=False).returncode == 0
