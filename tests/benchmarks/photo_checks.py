"""What checking a photo at its format's limit costs: peak memory and time of the check
(app.cats.formats), beside its estimate from the header and a whole decode with Pillow (what
the checks did before they were bounded).

Run from the repo root with the test venv (no engine needed):

    .venv/bin/python -m tests.benchmarks.photo_checks

Each measurement runs in a fresh process: its resident memory's high-water mark (VmHWM; not
ru_maxrss, which a child inherits from a large parent) after the check, less the mark before
it (file read, header parsed, Pillow's plugins imported). These are the
numbers docs/operations.md, Sizing, and the constants of app/cats/formats.py come from.
"""

import argparse
import io
import json
import math
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from app.cats import formats, photos
from tests.harness import REPO
from tests.harness.photos import COLOUR, ISSUE_PNG_SIDE, MAKERS, encoded, largest_square

MEASURE = """
import io, json, sys, time
from PIL import Image, GifImagePlugin, JpegImagePlugin, PngImagePlugin, WebPImagePlugin
from app.cats import formats
def high_water_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
data = open(sys.argv[1], "rb").read()
file = io.BytesIO(data)
header = formats.read_header(file, len(data))
before = high_water_kib()
started = time.monotonic()
if sys.argv[2] == "check":
    formats.check(file, header)
else:
    file.seek(0)
    Image.open(file).load()
seconds = time.monotonic() - started
peak_kib = high_water_kib() - before
print(json.dumps({"peak_mib": peak_kib / 1024, "seconds": seconds}))
"""


def measure(path: Path, what: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), what],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(result.stdout)


def largest(make: Callable[[int], bytes]) -> bytes:
    """The largest square `make(side)` the limits accept."""

    def header(content: bytes) -> formats.Header:
        return formats.read_header(io.BytesIO(content), len(content))

    side = math.isqrt(photos.pixel_limit(header(make(1000))))
    while not photos.within_limits(header(content := make(side))):
        side -= 1
    return content


def square(mode: str, side: int, format_: str, **options) -> bytes:
    colour = {"L": 90, "P": 3, "CMYK": (10, 20, 30, 40), "RGBA": (*COLOUR, 9)}.get(mode, COLOUR)
    return encoded(Image.new(mode, (side, side), colour), format_, **options)


def cases() -> list[tuple[str, bytes]]:
    side = math.isqrt(photos.MAX_PIXELS)
    return [
        ("PNG RGB, the issue's 6320x6320", MAKERS["png"](ISSUE_PNG_SIDE)),
        ("PNG RGBA at 40 Mpx", square("RGBA", side, "PNG")),
        ("JPEG baseline at 40 Mpx", square("RGB", side, "JPEG")),
        ("JPEG progressive 4:2:0 at 40 Mpx", square("RGB", side, "JPEG", progressive=True)),
        (
            "JPEG progressive 4:2:2 at 40 Mpx",
            square("RGB", side, "JPEG", progressive=True, subsampling=1),
        ),
        ("JPEG progressive greyscale at 40 Mpx", square("L", side, "JPEG", progressive=True)),
        ("JPEG progressive 4:4:4 at its limit", largest_square("jpg")[1]),
        (
            "JPEG progressive CMYK at its limit",
            largest(lambda s: square("CMYK", s, "JPEG", progressive=True)),
        ),
        ("GIF at 40 Mpx", largest_square("gif")[1]),
        ("GIF at 40 Mpx, disposal 2", square("P", side, "GIF", disposal=2)),
        ("WebP lossy at its limit", largest_square("webp")[1]),
        (
            "WebP lossless at its limit",
            largest(lambda s: square("RGBA", s, "WEBP", lossless=True)),
        ),
    ]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    print(
        "| photo | megapixels | file kB | estimate MiB | check: peak MiB | check: s "
        "| whole decode: peak MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as scratch:
        for name, content in cases():
            path = Path(scratch) / "photo"
            path.write_bytes(content)
            header = formats.read_header(io.BytesIO(content), len(content))
            assert photos.within_limits(header), name
            check, decode = measure(path, "check"), measure(path, "decode")
            print(
                f"| {name} | {header.pixels / 1e6:.1f} | {len(content) / 1000:.0f} "
                f"| {header.peak_bytes / 2**20:.1f} | {check['peak_mib']:.1f} "
                f"| {check['seconds']:.2f} | {decode['peak_mib']:.0f} |"
            )


if __name__ == "__main__":
    main()
