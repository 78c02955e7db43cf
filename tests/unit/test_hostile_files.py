"""The hostile-file corpus: each file checked as an upload is (app.cats.photos.validate_photo), in
a child process of its own, with the CPU and the memory the check took measured there.

Every file, refused or accepted, is answered within MAX_CPU_S of CPU, and its peak memory stays
within what the memory rule lets its check take: the header's estimate (Header.peak_bytes) when
the header can be read, UNSLOTTED_BYTES when it cannot (refused from its first bytes). Files
are at the upload limit where their cost grows with their size. The cases are the ones a fuzzer
and a reading of the code found (issue 21), and the largest photo of each format the limits
accept.
"""

from __future__ import annotations

import io
import json
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from app.cats import formats, photos
from tests.harness.photos import (
    ISSUE_PNG_SIDE,
    MAKERS,
    encoded,
    largest_square,
    noise,
    png_with_private_chunk,
)

MAX_CPU_S = 1.0
ACCEPTED = "accepted"
UNREADABLE = "The file is not an image that can be read."


def at_the_limit(unit: bytes, head: bytes = b"", tail: bytes = b"") -> bytes:
    """`head`, then `unit` repeated as often as the upload limit leaves room for, then `tail`."""
    room = settings.UPLOAD_MAX_BYTES - len(head) - len(tail)
    return head + unit * (room // len(unit)) + tail


def tiff_with_strip_offsets(count: int) -> bytes:
    """A little-endian TIFF whose one IFD names `count` strip offsets: Pillow's plugin read
    every one into memory just to open it (+309 MiB, 2.6 s)."""
    entries = [
        (256, 4, 1, 1),  # width
        (257, 4, 1, count),  # height
        (273, 4, count, 8 + 2 + 12 * 3 + 4),  # strip offsets, right after the IFD
    ]
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(struct.pack("<HHII", *entry) for entry in entries) + b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", 8) + ifd + bytes(4 * count)


def progressive_scans() -> tuple[bytes, bytes]:
    """A real progressive JPEG cut before its last scan, and that scan (its SOS to the EOI)."""
    content = encoded(noise(size=(16, 16)), "JPEG", progressive=True)
    last = content.rindex(b"\xff\xda")
    return content[:last], content[last:-2]


def redundant_scans() -> bytes:
    """The last scan repeated up to the upload limit: each one valid, and libjpeg walked every
    block again for each (100,000 of them: 9.8 s)."""
    before, scan = progressive_scans()
    return at_the_limit(scan, head=before, tail=b"\xff\xd9")


def most_scans() -> bytes:
    before, scan = progressive_scans()
    return before + scan * (formats.JPEG_MAX_SCANS - before.count(b"\xff\xda")) + b"\xff\xd9"


def fill_bytes(where: str) -> bytes:
    """0xFF fill before a marker, up to the upload limit: legal, written by no encoder, and
    quadratic in libjpeg as Pillow feeds it (10 MiB took 9 s)."""
    content = encoded(noise(), "JPEG")
    if where == "frame":
        return at_the_limit(b"\xff", head=content[:2], tail=content[2:])
    return at_the_limit(b"\xff", head=content[:-2], tail=content[-2:])


def few_fill_bytes() -> bytes:
    return encoded(noise(), "JPEG", progressive=True).replace(b"\xff\xda", b"\xff" * 8 + b"\xda")


def gif(frame_data: bytes, frames: int = 1) -> tuple[bytes, bytes, bytes]:
    """A 1x1 GIF's header, one frame of `frame_data` (its sub-blocks), and the trailer."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02" + frame_data + b"\x00"
    return head, frame * frames, b";"


def gif_of_one_byte_sub_blocks() -> bytes:
    head, frame, tail = gif(b"")
    return at_the_limit(b"\x01\x00", head=head + frame[:-1], tail=b"\x00" + tail)


def gif_of_tiny_frames() -> bytes:
    head, frame, tail = gif(b"\x02\x4c\x01")
    return at_the_limit(frame, head=head, tail=tail)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes]
    outcome: str


CORPUS = [
    # Refused from the first bytes: a refused format is named from its signature alone.
    Case("strips.png", lambda: tiff_with_strip_offsets(2_500_000), "The file is in TIFF format"),
    Case(
        "cat.jpg",
        lambda: at_the_limit(b"\0", head=b"%!PS-Adobe-3.0 EPSF-3.0\n"),
        "The file is in EPS format",
    ),
    Case("cat.png", lambda: b"\0\0\0\x1cftypavif" + bytes(1000), "The file is in AVIF format"),
    Case("cat.gif", lambda: at_the_limit(b"\0"), UNREADABLE),
    # JPEG: scans and fill bytes counted from the first scan on, before any decode.
    Case(
        "empty-scan-header.jpg",
        lambda: bytes.fromhex("ffd8ffc0000b080001000101011100ffda0002"),
        UNREADABLE,
    ),
    Case("scans.jpg", redundant_scans, f"a JPEG of more than {formats.JPEG_MAX_SCANS} scans"),
    Case("fill-before-frame.jpg", lambda: fill_bytes("frame"), UNREADABLE),
    Case("fill-before-end.jpg", lambda: fill_bytes("end"), UNREADABLE),
    Case("most-scans.jpg", most_scans, ACCEPTED),
    Case("few-fill-bytes.jpg", few_fill_bytes, ACCEPTED),
    Case("largest.jpg", lambda: largest_square("jpg")[1], ACCEPTED),
    # GIF: blocks and sub-blocks counted as the header's walk reads them.
    Case("sub-blocks.gif", gif_of_one_byte_sub_blocks, UNREADABLE),
    Case(
        "frames.gif",
        gif_of_tiny_frames,
        f"a GIF of more than {formats.GIF_MAX_BLOCKS} frames and extensions",
    ),
    Case("largest.gif", lambda: largest_square("gif")[1], ACCEPTED),
    # PNG: checked by streaming its rows, no pixel decoded.
    # A private chunk up to the upload limit (the PNG around it is under 1 kB), which Pillow keeps.
    Case(
        "private-chunk.png",
        lambda: png_with_private_chunk(settings.UPLOAD_MAX_BYTES - 1024),
        ACCEPTED,
    ),
    Case("largest.png", lambda: MAKERS["png"](ISSUE_PNG_SIDE), ACCEPTED),
    # WebP: decoded whole, the costliest check of all.
    Case("largest.webp", lambda: largest_square("webp")[1], ACCEPTED),
]


@dataclass(frozen=True)
class Measured:
    outcome: str
    cpu_s: float
    peak_bytes: int


def status_bytes(field: str) -> int:
    """A size from /proc/self/status (VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def check(name: str, content: bytes) -> str:
    try:
        photos.validate_photo(SimpleUploadedFile(name, content))
    except ValidationError as refusal:
        return " ".join(refusal.messages)
    return ACCEPTED


def measured(name: str, content: bytes) -> Measured:
    """`check` in a forked child: what it answered, its CPU time, and its peak resident memory
    above what it started with (the kernel's high-water mark, reset at the start)."""
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(reading)
            Path("/proc/self/clear_refs").write_text("5")
            before, started = status_bytes("VmRSS"), time.process_time()
            outcome = check(name, content)
            spent = time.process_time() - started
            result = [outcome, spent, status_bytes("VmHWM") - before]
            os.write(writing, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as pipe:
        answer = pipe.read()
    os.waitpid(child, 0)
    return Measured(*json.loads(answer))


def allowed_bytes(content: bytes) -> int:
    """What the memory rule lets the check of `content` take."""
    try:
        header = formats.read_header(io.BytesIO(content), len(content))
    except (formats.UnknownFormat, formats.Unreadable, formats.Unsupported):
        return photos.UNSLOTTED_BYTES
    return max(photos.UNSLOTTED_BYTES, header.peak_bytes)


@pytest.fixture(scope="module", autouse=True)
def plugins_loaded():
    """Pillow's plugins and the checks' modules imported before the first child forks, so no
    child counts an import as its check's memory."""
    for made in (MAKERS["png"](8), MAKERS["jpg"](8), MAKERS["gif"](8), MAKERS["webp"](8)):
        Image.open(io.BytesIO(made)).load()


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_every_file_is_answered_within_its_cpu_and_memory(case, tmp_path, settings):
    settings.PHOTO_CHECK_SLOT_DIR = str(tmp_path)
    content = case.make()
    assert len(content) <= settings.UPLOAD_MAX_BYTES
    result = measured(case.name, content)
    assert case.outcome in result.outcome
    assert result.cpu_s < MAX_CPU_S, f"{result.cpu_s:.2f} s of CPU"
    allowed = allowed_bytes(content)
    assert result.peak_bytes <= allowed, (
        f"{result.peak_bytes / photos.MIB:.1f} MiB, over {allowed / photos.MIB:.1f}"
    )
