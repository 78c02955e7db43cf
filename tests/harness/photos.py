"""Photos at the per-format limits of app.cats.photos, for the unit and faults tests: flat
colour, so the files are small (a few hundred kB at most) and only decoding them is costly."""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable

from PIL import Image

from app.cats import formats, photos

COLOUR = (200, 120, 40)
# The issue's photo: 6320x6320, 39.9 megapixels, 152 MiB decoded, 131 kB on the wire.
ISSUE_PNG_SIDE = 6320


def encoded(image: Image.Image, format_: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format_, **options)
    return buffer.getvalue()


def noise(mode: str = "RGB", size: tuple[int, int] = (300, 200)) -> Image.Image:
    """An image that does not compress: its file is about as large as its pixels."""
    return Image.effect_noise(size, 60).convert(mode)


def png_with_private_chunk(private_bytes: int) -> bytes:
    """A small PNG carrying `private_bytes` of a private chunk (prIv) before its image data,
    which Pillow reads into memory and keeps."""
    content = encoded(Image.new("RGB", (64, 48), COLOUR), "PNG")
    data = bytes(private_bytes)
    chunk = struct.pack(">I", len(data)) + b"prIv" + data
    chunk += struct.pack(">I", zlib.crc32(b"prIv" + data))
    at = content.index(b"IDAT") - 4
    return content[:at] + chunk + content[at:]


def header_of(content: bytes) -> formats.Header:
    return formats.read_header(io.BytesIO(content), len(content))


# The costliest variant of each format still accepted, as a square of a given side.
MAKERS: dict[str, Callable[[int], bytes]] = {
    "png": lambda side: encoded(Image.new("RGB", (side, side), COLOUR), "PNG"),
    "gif": lambda side: encoded(Image.new("P", (side, side), 3), "GIF"),
    # Progressive with full-resolution colour: libjpeg keeps 6 bytes of coefficients a pixel.
    "jpg": lambda side: encoded(
        Image.new("RGB", (side, side), COLOUR), "JPEG", progressive=True, subsampling=0
    ),
    "webp": lambda side: encoded(Image.new("RGB", (side, side), COLOUR), "WEBP"),
}


def largest_square(extension: str) -> tuple[int, bytes]:
    """The largest square photo of MAKERS[extension] the limits accept: (side, file).
    Searched from the limit the messages give (pixel_limit), which is close."""
    make = MAKERS[extension]
    side = math.isqrt(photos.pixel_limit(header_of(make(1000))))
    content = make(side)
    while not photos.within_limits(header_of(content)):
        side -= 1
        content = make(side)
    while photos.within_limits(header_of(bigger := make(side + 1))):
        side, content = side + 1, bigger
    return side, content
