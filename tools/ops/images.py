"""The images a verb runs: which version to deploy, whether its images are on this VM, and
building, pulling and pruning them.

The web image is the release (code, static files, nginx templates) and the nginx image the
proxy; each version names what went into it, base image included, so a patched base is a new
version and a deploy like any other:
- a release built from the checkout is `<git describe>-<bases>`, `<bases>` a digest of both
  base images' ids on this VM (Python's and nginx's: a release and its proxy are deployed
  together, so a new base of either is a new release; one named by the operator, `./ops deploy
  1.4.2`, is taken as it is: it was built elsewhere);
- the proxy is `proxy-<digest>`, a digest of nginx/ (templates aside, which belong to the
  release) and of its base image's id.
`./ops deploy --refresh-base` pulls the newest base images first; nothing else here pulls
unless asked (`--pull`), and never through compose, which would try the project's own images
on a registry before building them.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

from tools.ops import commands
from tools.ops.console import OpsError
from tools.ops.project import Project

from config.release import VERSION_PATTERN

PROXY_DIR = "nginx"
# Part of the release (the web image copies them), not of the proxy.
PROXY_EXCLUDED = ("templates",)
DOCKERFILES = {"web": "Dockerfile", "nginx": "nginx/Dockerfile"}
BASE_DIGITS = 8
ARG = re.compile(r"^\s*ARG\s+(\w+)=(\S+)", re.MULTILINE | re.IGNORECASE)
FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", re.MULTILINE | re.IGNORECASE)


def check_version(version: str) -> str:
    if not VERSION_PATTERN.fullmatch(version):
        raise OpsError(
            f"{version!r} is not a version this stack can run: use lowercase letters, digits, "
            "dots and dashes, starting with a letter or digit (it becomes an image tag and a "
            "network alias)"
        )
    return version


def describe_checkout(directory: Path) -> str:
    """The checkout's commit as git describes it (nearest tag and commits since, or the commit).
    A checkout with uncommitted changes has no version of its own."""
    try:
        described = subprocess.run(
            ["git", "describe", "--tags", "--always", "--dirty"],
            cwd=directory, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        raise OpsError(
            f"{directory} is not a git checkout (./ops deploy takes its version from git); "
            "name one: ./ops deploy VERSION --build"
        ) from None
    if described.endswith("-dirty"):
        raise OpsError(
            "the checkout has uncommitted changes (./ops deploy takes its version from git); "
            "commit them, or name a version: ./ops deploy VERSION --build"
        )
    return described.lower()


def base_image(directory: Path, service: str) -> str:
    """The image the service's Dockerfile starts from (its first FROM, ARG defaults applied)."""
    text = (directory / DOCKERFILES[service]).read_text()
    defaults = dict(ARG.findall(text))
    found = FROM.search(text)
    if not found:
        raise OpsError(f"{DOCKERFILES[service]} has no FROM line")
    return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), found[1])


def digest_of(directory: Path, base_id: str) -> str:
    """A digest of what goes into the nginx image: its files, names and modes, and its base."""
    root = directory / PROXY_DIR
    digest = hashlib.sha256(f"base {base_id}\n".encode())
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
        config = self.project.run(
            commands.config_json(),
            env={"APP_VERSION": app_version, "NGINX_VERSION": nginx_version},
            what="docker compose config",
        ).stdout
        services = json.loads(config)["services"]
        return {name: services[name]["image"] for name in ("web", "nginx")}

    def service_image(self, service: str) -> str | None:
        """The image compose.yaml gives `service`, when the files in use define it."""
        services = self.project.config()["services"]
        return services[service]["image"] if service in services else None

    def exists(self, image: str) -> bool:
        return self.image_id(image) is not None

    def image_id(self, image: str) -> str | None:
        result = self.project.run(commands.image_id(image), check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    def base_id(self, service: str, *, refresh: bool = False) -> str:
        """The id of the service's base image on this VM: pulled first when asked (the newest),
        or when missing."""
        base = base_image(self.project.directory, service)
        if refresh or not self.exists(base):
            self.project.run(commands.pull(base), what=f"pulling the base image {base}")
        found = self.image_id(base)
        if found is None:
            raise OpsError(f"the base image {base} is not on this VM after pulling it")
        return found.removeprefix("sha256:")

    def checkout_version(self, *, refresh: bool = False) -> str:
        bases = "".join(self.base_id(service, refresh=refresh) for service in DOCKERFILES)
        digest = hashlib.sha256(bases.encode()).hexdigest()[:BASE_DIGITS]
        return check_version(f"{describe_checkout(self.project.directory)}-{digest}")

    def proxy_version(self, *, refresh: bool = False) -> str:
        return digest_of(self.project.directory, self.base_id("nginx", refresh=refresh))

    def build(self, service: str, app_version: str, nginx_version: str) -> None:
        self.project.run(
            commands.build(service),
            env={"APP_VERSION": app_version, "NGINX_VERSION": nginx_version},
            what=f"building the {service} image",
        )

    def pull(self, image: str) -> None:
        self.project.run(commands.pull(image), what=f"pulling {image}")

    def local_versions(self, image: str) -> list[str]:
        """Tags of `image`'s repository on this VM, newest first."""
        repository = image.rsplit(":", 1)[0]
        listed = self.project.run(commands.image_tags(repository), what="listing images").stdout
        return [tag for tag in listed.split() if tag != "<none>"]

    def remove(self, image: str) -> bool:
        return self.project.run(commands.remove_image(image), check=False).returncode == 0
