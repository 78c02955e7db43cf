"""Publish this image's release into the site volume that nginx serves from, and optionally
make it the active one.

A release is what nginx needs from the app: its static files and its nginx site templates
(nginx/templates). Static files go to `static/`, beside every earlier release's: a file is
added or updated in one rename, never removed here (scripts/prune_releases.py does that), so
pages rendered by the previous release keep their hashed CSS and scripts. The templates and the
static manifest go to `releases/<version>/`. `--activate` points `current` at this release in
one rename; nginx renders `current` at start and at reload-site.

compose's publish service runs it with --activate at every `up`; tools/ops runs it without,
before a deploy's new containers start, and with --activate at the switch. Idempotent.
"""

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

from config.errors import exit_on_configuration_error
from config.release import SITE_DIR, TEMPLATES_DIR, release_version, static_root


def replace_file(source: Path, target: Path) -> None:
    """Copy `source` to `target` through a temporary file and a rename: a reader (nginx) sees
    the old file or the new one, never half of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(handle)
    shutil.copyfile(source, partial)
    os.chmod(partial, 0o644)
    os.replace(partial, target)


def publish_static(source: Path, target: Path) -> int:
    """Add the files `target` lacks or holds with other contents; returns how many."""
    copied = 0
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        destination = target / path.relative_to(source)
        if destination.is_file() and filecmp.cmp(path, destination, shallow=False):
            continue
        replace_file(path, destination)
        copied += 1
    return copied


def publish_release(version: str, static: Path, site: Path) -> Path:
    """releases/<version>: the nginx templates and the static manifest, swapped in whole."""
    releases = site / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=releases, prefix=f".{version}."))
    shutil.copytree(TEMPLATES_DIR, staging / "nginx")
    shutil.copyfile(static / "staticfiles.json", staging / "staticfiles.json")
    for path in (staging, *staging.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    release = releases / version
    if release.exists():
        retired = Path(tempfile.mkdtemp(dir=releases, prefix=f".{version}.retired."))
        os.replace(release, retired / version)
        os.replace(staging, release)
        shutil.rmtree(retired)
    else:
        os.replace(staging, release)
    return release


def activate(version: str, site: Path) -> None:
    link = site / f".current.{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(Path("releases") / version)
    os.replace(link, site / "current")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activate", action="store_true", help="make it the active release")
    args = parser.parse_args()
    os.umask(0o022)
    with exit_on_configuration_error():
        version = release_version()
        static = static_root()
    copied = publish_static(static, SITE_DIR / "static")
    publish_release(version, static, SITE_DIR)
    if args.activate:
        activate(version, SITE_DIR)
    state = "active" if args.activate else "published"
    print(f"release {version} {state}: {copied} static files added or updated", flush=True)


if __name__ == "__main__":
    sys.exit(main())
