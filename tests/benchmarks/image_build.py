"""The production image: bytes it adds over its base, and a warm rebuild after a code change.

Run from the repo root with the engine up:

    .venv/bin/python -m tests.benchmarks.image_build

Copies the build context (the project's files, as git lists them) to a scratch folder, builds
it (warm: the engine's build cache is reused), changes one line of application code, builds
again and times that build. The second build's log must show the dependency layers CACHED:
a code change never reinstalls requirements (tests/image checks the same on every run). Sizes
come from `docker image inspect` (the base here may be a stand-in of a different size than the
official image, hence "added").
"""

import shutil
import tempfile
from pathlib import Path

from tests.harness.base_images import Dockerfile, dockerfile_base_images
from tests.harness.docker import docker
from tests.image import build_cache

TAG = "catcollector-bench/web:latest"


def base_image() -> str:
    return dockerfile_base_images(Dockerfile(build_cache.REPO / "Dockerfile"))[-1]


def size(image: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout)


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="bench-image-"))
    try:
        context = build_cache.copy_build_context(scratch / "context")
        first_seconds, _ = build_cache.build(context, TAG)
        build_cache.change_code(context)
        warm_seconds, log = build_cache.build(context, TAG)

        base = base_image()
        added = size(TAG) - size(base)
        print(f"base {base}: {size(base):,} bytes; image: {size(TAG):,} bytes")
        print(f"added over the base: {added:,} bytes ({added / 1e6:.1f} MB)")
        print(f"first build (engine cache warm): {first_seconds:.1f} s")
        print(f"rebuild after changing {build_cache.CODE_FILE}: {warm_seconds:.1f} s")
        for instruction in build_cache.DEPENDENCY_STEPS:
            cached = build_cache.was_cached(log, instruction)
            print(f"  step `{instruction} ...`: {'CACHED' if cached else 'REBUILT'}")
            for line in build_cache.step_lines(log, instruction):
                print(f"    {line}")
            if not cached:
                raise SystemExit(f"a code change re-ran `{instruction}`: the layers are misordered")
        print("\nlayers added over the base (docker history):")
        history = docker(
            "history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", TAG
        ).stdout.splitlines()
        base_layers = len(docker("history", "--quiet", base).stdout.split())
        for line in history[: len(history) - base_layers]:
            layer_size, created_by = line.split("\t", 1)
            if layer_size not in ("0B", "0"):
                print(f"  {layer_size:>8}  {created_by[:110]}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        docker("image", "rm", TAG, check=False)


if __name__ == "__main__":
    main()
