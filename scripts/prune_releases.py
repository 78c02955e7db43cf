"""Remove from the site volume the releases not named, and the static files none of the named
releases use: `prune_releases.py VERSION...`.

tools/ops runs it after a deploy with the versions it keeps for rollback (OPS_KEEP_VERSIONS),
so a rollback finds its release and its static files still there. The active release is kept
whatever the list says. Files are matched through each kept release's static manifest
(staticfiles.json): the original names, the hashed ones, and their precompressed .gz.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

from config.errors import ConfigurationError, exit_on_configuration_error
from config.release import SITE_DIR, VERSION_PATTERN

MANIFEST = "staticfiles.json"


def used_static_files(releases: list[Path]) -> set[str]:
    used = {MANIFEST}
    for release in releases:
        paths = json.loads((release / MANIFEST).read_text())["paths"]
        for name in (*paths.keys(), *paths.values()):
            used |= {name, f"{name}.gz"}
    return used


def prune(site: Path, keep: set[str]) -> tuple[list[str], int]:
    releases_dir = site / "releases"
    current = site / "current"
    if current.is_symlink():
        keep = keep | {Path(current.readlink()).name}
    removed = []
    for release in sorted(releases_dir.iterdir()):
        if release.name not in keep:
            shutil.rmtree(release)
            removed.append(release.name)
    kept = [releases_dir / name for name in sorted(keep) if (releases_dir / name).is_dir()]
    used = used_static_files(kept)
    static = site / "static"
    unused = [
        path
        for path in static.rglob("*")
        if path.is_file() and path.relative_to(static).as_posix() not in used
    ]
    for path in unused:
        path.unlink()
    return removed, len(unused)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="+", metavar="VERSION", help="releases to keep")
    args = parser.parse_args()
    with exit_on_configuration_error():
        for version in args.versions:
            if not VERSION_PATTERN.fullmatch(version):
                raise ConfigurationError(f"{version!r} is not a release version")
    removed, files = prune(SITE_DIR, set(args.versions))
    print(f"releases removed: {', '.join(removed) or 'none'}; unused static files removed: {files}")


if __name__ == "__main__":
    sys.exit(main())
