"""python -m tests.harness.standins [NAME ...]

Provides the named base images (default: every one the project references, see
images_to_provide) on the local engine, in parallel: a cold build is mostly waiting on the
mirror and on dpkg. One line per image; exit 1 with a one-line reason per image that could
not be provided.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tests.harness.base_images import BaseImageError
from tests.harness.standins import StandinError, images_to_provide
from tests.harness.standins.build import Provider


def main(argv: list[str]) -> int:
    try:
        names = argv or images_to_provide(Path.cwd())
    except BaseImageError as error:
        print(f"base images: {error}", file=sys.stderr)
        return 1
    provider = Provider()
    failed = 0
    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        futures = {pool.submit(provider.provide, name): name for name in names}
        for future in as_completed(futures):
            name = futures[future]
            try:
                print(f"  {name}: {future.result()}", flush=True)
            except StandinError as error:
                failed += 1
                print(f"base images: {error}", file=sys.stderr, flush=True)
            except subprocess.TimeoutExpired as error:
                failed += 1
                command = " ".join(error.cmd)
                print(
                    f"base images: {name}: {command} timed out after {error.timeout}s",
                    file=sys.stderr,
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
