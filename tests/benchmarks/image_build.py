"""The production image: bytes it adds over its base, and a warm rebuild after a code change.

Run from the repo root with the engine up:

    .venv/bin/python -m tests.benchmarks.image_build

Copies the build context (the project's files, as git lists them) to a scratch folder, builds
it (warm: the engine's build cache is reused), changes one line of application code, builds
again and times that build. The second build's log must show the dependency layers CACHED:
a code change never reinstalls requirements. Sizes come from `docker image inspect` (the base
here may be a stand-in of a different size than the official image, hence "added").
"""

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness.base_images import Dockerfile, dockerfile_base_images
from tests.harness.docker import docker
from tests.harness.tracked import tracked_files

REPO = Path(__file__).resolve().parents[2]
TAG = "catcollector-bench/web:latest"
CODE_FILE = "app/cats/views.py"
DEPENDENCY_STEPS = ("pip wheel", "pip --python /opt/venv/bin/python install")


def base_image() -> str:
    return dockerfile_base_images(Dockerfile(REPO / "Dockerfile"))[-1]


def build(context: Path) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(
        ["docker", "build", "--progress=plain", "--tag", TAG, str(context)],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.monotonic() - started, result.stderr


def step_lines(log: str, command: str) -> list[str]:
    """The build log's lines for the step running `command`, e.g. '#9 CACHED'."""
    numbers = set(re.findall(rf"^(#\d+) \[[^\]]+\] RUN .*{re.escape(command)}", log, re.M))
    return [line for line in log.splitlines() if line.split(" ", 1)[0] in numbers]


def size(image: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout)


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="bench-image-"))
    context = scratch / "context"
    try:
        for name in tracked_files(REPO):
            source = REPO / name
            if source.is_file():
                (context / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, context / name)
        first_seconds, _ = build(context)
        code = context / CODE_FILE
        code.write_text(code.read_text() + f"\n# rebuilt at {time.time()}\n")
        warm_seconds, log = build(context)

        base = base_image()
        added = size(TAG) - size(base)
        print(f"base {base}: {size(base):,} bytes; image: {size(TAG):,} bytes")
        print(f"added over the base: {added:,} bytes ({added / 1e6:.1f} MB)")
        print(f"first build (engine cache warm): {first_seconds:.1f} s")
        print(f"rebuild after changing {CODE_FILE}: {warm_seconds:.1f} s")
        for command in DEPENDENCY_STEPS:
            lines = step_lines(log, command)
            cached = any(line.endswith(" CACHED") for line in lines)
            print(f"  step `{command} ...`: {'CACHED' if cached else 'REBUILT'}")
            for line in lines:
                print(f"    {line}")
            if not cached:
                raise SystemExit(f"a code change re-ran `{command}`: the layers are misordered")
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
