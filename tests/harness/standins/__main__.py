"""python -m tests.harness.standins [NAME ...]

Provides the named base images (default: every one the project references, see
images_to_provide) on the local engine. One line per image; exit 1 with a one-line reason
when one cannot be provided.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness.base_images import BaseImageError
from tests.harness.standins import StandinError, images_to_provide
from tests.harness.standins.build import Provider


def main(argv: list[str]) -> int:
    try:
        names = argv or images_to_provide(Path.cwd())
        provider = Provider()
        for name in names:
            print(f"  {name}: {provider.provide(name)}", flush=True)
    except (StandinError, BaseImageError) as error:
        print(f"base images: {error}", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired as error:
        print(
            f"base images: timed out after {error.timeout}s: {' '.join(error.cmd)}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
