"""The four photo formats, read, checked and thumbnailed with memory known in advance. No Django
here: app.cats.photos decides what to accept and when a check may run (app.cats.thumbnails when
a thumbnail may be made); this module says what a file is and what checking it, or making its
thumbnail (at the end of this file), costs.

read_header() reads only what precedes the image data (for GIF, every block's length too,
which takes constant memory) and returns a Header: the format, the size in pixels and what the
check will allocate at its peak, so that everything a header can decide is decided before any
pixel is decoded. check() then proves the rest as cheaply as the format allows:

- PNG: every chunk's CRC, and the image data inflated in 64 kB pieces and counted against the
  size the header promises (each row's filter byte checked on the way); nothing is decoded
  into pixels, so it takes constant memory whatever the size. Pillow is not used: its
  verify() reads each chunk whole and its open() inflates text chunks up to 64 MB.
- JPEG: decoded at 1/8 scale (libjpeg's DCT scaling, Pillow's draft()), which still
  entropy-decodes every block, so truncation is caught. A single-scan (baseline) file then
  needs a few MB at any size; a progressive (multi-scan) one makes libjpeg keep every DCT
  coefficient of the image: 128 bytes per 8x8 block of each colour component.
- GIF: the block structure walked to the trailer (a file cut anywhere is caught), then the
  first frame decoded: one byte a pixel, plus one more for the disposal area Pillow may
  prepare beside it.
- WebP: no reduced decode exists; the first frame is decoded: libwebp's canvas and Pillow's
  copies, about four RGBA buffers (15.3 bytes a pixel measured; 16 counted).

Pillow's own opening also holds parts of the file in memory (JPEG's APP segments, GIF's
comments, the whole of a WebP file): counted as `file_bytes`.

The JPEG and GIF headers are read here, not by Pillow's lazy open(), though it finds the same
size and sampling: its JPEG marker loop reads fill bytes one at a time in Python (1 MB of them
before the frame: 0.30 s of CPU, 4 MB: 1.20 s, measured), and its GIF plugin reads up to the
first frame, while a later frame may grow the canvas and a cut may come after it. Here fill
bytes, scans, blocks and sub-blocks are counted and bounded first; then Pillow opens the file,
and one that it reads another size from is refused (_check_with_pillow).
"""

from __future__ import annotations

import dataclasses
import io
import math
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

MIB = 1024 * 1024
GIF_BYTES_PER_PIXEL = 2
WEBP_BYTES_PER_PIXEL = 16
# libjpeg's coefficient buffer: 64 coefficients of 2 bytes for every 8x8 block.
JPEG_BYTES_PER_BLOCK = 128
# Pillow stores a decoded RGB or CMYK pixel in 4 bytes (one for greyscale; 4 counted). A PNG
# decodes to at most that too: Pillow keeps 16-bit colour as 8-bit RGB(A), 16-bit grey in 2.
DECODED_BYTES_PER_PIXEL = 4
# The check decodes a JPEG at 1/8 scale, the most libjpeg can reduce.
JPEG_CHECK_SCALE = 8
# Decoder state, buffers and Python objects of one check, beyond the per-pixel and per-file
# memory (zlib's window, libjpeg's tables and row buffers, 64 kB reads).
CHECK_OVERHEAD_BYTES = 2 * MIB
READ_SIZE = 64 * 1024

# The JPEG frames browsers display: baseline, extended sequential and progressive, Huffman
# coded. Lossless, hierarchical and arithmetic-coded JPEGs are refused.
JPEG_DISPLAYABLE = {0xC0: "baseline", 0xC1: "extended sequential", 0xC2: "progressive"}
JPEG_OTHER_FRAMES = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}

# A JPEG's scans: encoders write about ten (libjpeg's progressive script: 10 for colour, 6
# for grey); libjpeg walks every block once per scan, so a 1.15 MiB file of 100,000 redundant
# scans took 9.8 s of CPU to check.
JPEG_MAX_SCANS = 100
# Fill bytes (0xFF) before a marker: encoders write none. Pillow feeds libjpeg in pieces, and
# libjpeg starts a marker's search again at each piece, so a long run costs the square of its
# length (10 MiB of them: 9 s). A quantisation table of 16-bit 0xFFFF values, the longest run
# a real file can hold after its first scan, is 128 bytes.
JPEG_MAX_FILL_BYTES = 1024
# A GIF's blocks (frames and extensions), each a chain of sub-blocks of 1 to 255 bytes, walked
# to the trailer by the header's reading: encoders write 255-byte sub-blocks but the last of a
# chain, and about two blocks a frame (a graphic control extension, the image). 10 MiB of
# 1-byte sub-blocks, or of 1x1 frames, took 0.5 to 0.7 s to walk; bounded, well under 0.1 s.
GIF_MAX_BLOCKS = 20_000
# Sub-blocks of the whole file at most, beyond two a block: one per 64 bytes, a quarter of the
# average any encoder writes.
GIF_BYTES_PER_SUB_BLOCK = 64

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Colour type -> (channels, allowed bit depths)
PNG_COLOUR_TYPES = {
    0: (1, {1, 2, 4, 8, 16}),
    2: (3, {8, 16}),
    3: (1, {1, 2, 4, 8}),
    4: (2, {8, 16}),
    6: (4, {8, 16}),
}
# Adam7 passes: (first column, first row, column step, row step)
ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
PNG_FILTER_TYPES = bytes(range(5))


class UnknownFormat(Exception):
    """The file does not start like a JPEG, PNG, GIF or WebP file."""


class Unreadable(Exception):
    """The file starts like one of the four formats but is not a whole, valid image of it."""


class Unsupported(Exception):
    """A valid image of a variant that is refused; the message says why, for the user."""


@dataclass(frozen=True)
class Header:
    format: str  # Pillow's name: JPEG, PNG, GIF, WEBP
    width: int
    height: int
    kind: str  # what the user uploaded, for messages ("a progressive JPEG")
    pixel_bytes: int  # memory the check allocates in proportion to the pixels
    file_bytes: int = 0  # memory the check allocates in proportion to the file's parts
    size: int = 0  # the file's bytes

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def peak_bytes(self) -> int:
        return self.pixel_bytes + self.file_bytes + CHECK_OVERHEAD_BYTES


def read_header(file: BinaryIO, size: int) -> Header:
    """What `file` (`size` bytes, read from its start) is, from its header."""
    return dataclasses.replace(_format_header(file, size), size=size)


def _format_header(file: BinaryIO, size: int) -> Header:
    file.seek(0)
    start = file.read(16)
    file.seek(0)
    if start.startswith(PNG_SIGNATURE):
        return _png_header(file)
    if start.startswith(b"\xff\xd8\xff"):
        header = _jpeg_header(file)
        _bound_jpeg_scans(file)
        return header
    if start.startswith((b"GIF87a", b"GIF89a")):
        return _gif_header(file, size)
    if start.startswith(b"RIFF") and start[8:12] == b"WEBP":
        return _webp_header(file, size)
    raise UnknownFormat


def check(file: BinaryIO, header: Header) -> None:
    """Prove that `file` is a whole, valid image of `header`'s format; raises Unreadable."""
    file.seek(0)
    if header.format == "PNG":
        _check_png(file)
    else:
        _check_with_pillow(file, header)


def _read_exactly(file: BinaryIO, count: int) -> bytes:
    data = file.read(count)
    if len(data) != count:
        raise Unreadable("the file ends early")
    return data


# --- PNG ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PngLayout:
    width: int
    height: int
    bits_per_pixel: int
    interlaced: bool

    def passes(self) -> list[tuple[int, int]]:
        """(row bytes including the filter byte, rows) of each pass with any pixel."""
        if not self.interlaced:
            shapes = [(self.width, self.height)]
        else:
            shapes = [
                (math.ceil((self.width - x) / dx), math.ceil((self.height - y) / dy))
                for x, y, dx, dy in ADAM7
                if self.width > x and self.height > y
            ]
        return [(1 + math.ceil(w * self.bits_per_pixel / 8), h) for w, h in shapes]


def _png_layout(ihdr: bytes) -> _PngLayout:
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", ihdr
    )
    if colour not in PNG_COLOUR_TYPES or depth not in PNG_COLOUR_TYPES[colour][1]:
        raise Unreadable(f"bit depth {depth} with colour type {colour}")
    if not (0 < width < 2**31 and 0 < height < 2**31):
        raise Unreadable(f"size {width}x{height}")
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise Unreadable("unknown compression, filter or interlace method")
    return _PngLayout(width, height, PNG_COLOUR_TYPES[colour][0] * depth, interlace == 1)


def _png_header(file: BinaryIO) -> Header:
    _read_exactly(file, 8)
    length, kind = struct.unpack(">I4s", _read_exactly(file, 8))
    if kind != b"IHDR" or length != 13:
        raise Unreadable("the first chunk is not IHDR")
    layout = _png_layout(_read_exactly(file, 13))
    # The check inflates without decoding: only the overhead, whatever the size.
    return Header("PNG", layout.width, layout.height, "a PNG photo", pixel_bytes=0)


class _RowWalker:
    """Follows the inflated image data row by row without keeping it: counts it against the
    layout and checks each row's filter byte (0 to 4)."""

    def __init__(self, layout: _PngLayout) -> None:
        self.passes = layout.passes()
        self.position = 0  # offset within the current row
        self.rows_left = self.passes[0][1] if self.passes else 0

    def feed(self, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            if not self.passes:
                raise Unreadable("more image data than the header's size")
            stride = self.passes[0][0]
            in_pass = min(len(data) - offset, self.rows_left * stride - self.position)
            piece = data[offset : offset + in_pass]
            first_filter = (stride - self.position) % stride
            # Deleting the valid filter types leaves the invalid ones (in C: rows can be 2 bytes).
            if piece[first_filter::stride].translate(None, PNG_FILTER_TYPES):
                raise Unreadable("a row has an unknown filter type")
            consumed = self.position + in_pass
            self.rows_left -= consumed // stride
            self.position = consumed % stride
            offset += in_pass
            if self.rows_left == 0:
                self.passes.pop(0)
                self.rows_left = self.passes[0][1] if self.passes else 0

    def complete(self) -> bool:
        return not self.passes


class _PngScan:
    """One pass over a PNG's chunks: CRCs, chunk order, and the image data inflated through
    a _RowWalker."""

    def __init__(self) -> None:
        self.inflater = zlib.decompressobj()
        self.walker: _RowWalker | None = None
        self.palette_needed = False
        self.idat = "before"  # before, in, after: the IDAT chunks must be consecutive

    def check_order(self, kind: bytes) -> None:
        if self.walker is None and kind != b"IHDR":
            raise Unreadable("the first chunk is not IHDR")
        if kind == b"IDAT":
            if self.idat == "after":
                raise Unreadable("the image data is split by other chunks")
            if self.palette_needed:
                raise Unreadable("a palette image without a palette")
            self.idat = "in"
        elif self.idat == "in":
            self.idat = "after"

    def read_chunk(self, file: BinaryIO, kind: bytes, length: int) -> bytes:
        """Reads the chunk's data and CRC in pieces; returns the data of IHDR only."""
        crc = zlib.crc32(kind)
        kept = b""
        while length:
            piece = _read_exactly(file, min(READ_SIZE, length))
            length -= len(piece)
            crc = zlib.crc32(piece, crc)
            if kind == b"IDAT":
                self.inflate(piece)
            elif kind == b"IHDR" and len(kept) < 13:
                kept += piece
        if struct.unpack(">I", _read_exactly(file, 4))[0] != crc:
            raise Unreadable(f"the CRC of a {kind.decode()} chunk does not match")
        return kept

    def note(self, kind: bytes, data: bytes) -> None:
        if kind == b"IHDR":
            if self.walker is not None or len(data) != 13:
                raise Unreadable("a second or malformed IHDR")
            self.walker = _RowWalker(_png_layout(data))
            self.palette_needed = data[9] == 3
        elif kind == b"PLTE":
            self.palette_needed = False

    def inflate(self, data: bytes) -> None:
        if self.inflater.eof:
            raise Unreadable("data after the end of the image data")
        try:
            while data:
                # At most READ_SIZE out at a time: a few kB can inflate to hundreds of MB.
                self.walker.feed(self.inflater.decompress(data, READ_SIZE))
                data = self.inflater.unconsumed_tail
        except zlib.error:
            raise Unreadable("the image data is corrupt") from None

    def finish(self) -> None:
        if self.idat == "before":
            raise Unreadable("no image data")
        try:
            self.walker.feed(self.inflater.flush())
        except zlib.error:
            raise Unreadable("the image data is corrupt") from None
        if not self.inflater.eof or not self.walker.complete():
            raise Unreadable("the image data ends early")


def _check_png(file: BinaryIO) -> None:
    _read_exactly(file, 8)
    scan = _PngScan()
    kind = b""
    while kind != b"IEND":
        length, kind = struct.unpack(">I4s", _read_exactly(file, 8))
        if length >= 2**31 or not kind.isalpha():
            raise Unreadable("a chunk header is corrupt")
        scan.check_order(kind)
        scan.note(kind, scan.read_chunk(file, kind, length))
    scan.finish()


# --- JPEG ---------------------------------------------------------------------------------


def _jpeg_header(file: BinaryIO) -> Header:
    _read_exactly(file, 2)  # SOI
    frame = None
    while True:
        marker = _read_exactly(file, 2)
        if marker[0] != 0xFF:
            raise Unreadable("no marker where one should be")
        code = _marker_code(file, marker[1])
        if code == 0x01 or 0xD0 <= code <= 0xD7:  # no length
            continue
        if code in (0xD8, 0xD9):
            raise Unreadable("the image ends before its first scan")
        (length,) = struct.unpack(">H", _read_exactly(file, 2))
        if length < 2:
            raise Unreadable("a segment length is corrupt")
        segment = _read_exactly(file, length - 2)
        if code in JPEG_OTHER_FRAMES:
            raise Unsupported(
                "The photo is a lossless, hierarchical or arithmetic-coded JPEG, which browsers "
                "do not display; save it as a standard JPEG."
            )
        if code in JPEG_DISPLAYABLE:
            if frame is not None:
                # Pillow would use the last frame header, this reading the first.
                raise Unreadable("two frame headers")
            frame = (code, segment)
        elif code == 0xDA:
            if frame is None:
                raise Unreadable("a scan before the frame header")
            if not segment:
                raise Unreadable("an empty scan header")
            # Everything before the first scan is what Pillow's open() keeps in memory.
            return _jpeg_frame(*frame, scan_components=segment[0], header_bytes=file.tell())


def _marker_code(file: BinaryIO, code: int) -> int:
    """The marker's code, past the fill bytes (0xFF) that may come before it."""
    for _ in range(JPEG_MAX_FILL_BYTES):
        if code != 0xFF:
            return code
        code = _read_exactly(file, 1)[0]
    raise Unreadable("a run of fill bytes no encoder writes")


def _bound_jpeg_scans(file: BinaryIO) -> None:
    """From the first scan (where `file` is) to the end, in READ_SIZE pieces: at most
    JPEG_MAX_SCANS scans and no run of fill bytes longer than JPEG_MAX_FILL_BYTES. Both are
    found by their bytes alone: in the coded data a 0xFF is always followed by 0x00 or a
    marker, so 0xFF 0xDA starts a scan wherever it is, and 0xFF 0xFF is fill."""
    scans = 1
    fill = b"\xff" * (JPEG_MAX_FILL_BYTES + 1)
    tail = b""
    while piece := file.read(READ_SIZE):
        # A scan's marker may straddle two pieces (its first byte the tail's last), and so
        # may a run of fill bytes (the tail holds one byte less than the run refused).
        scans += (tail[-1:] + piece).count(b"\xff\xda")
        if fill in tail + piece:
            raise Unreadable("a run of fill bytes no encoder writes")
        if scans > JPEG_MAX_SCANS:
            raise Unsupported(
                f"The photo is a JPEG of more than {JPEG_MAX_SCANS} scans, which only a "
                "damaged or hostile file has; save it again as a standard JPEG."
            )
        tail = (tail + piece)[-(len(fill) - 1) :]


def _jpeg_decoded_bytes(width: int, height: int, scale: int) -> int:
    """What libjpeg's output at 1/`scale` holds, in Pillow's 4 bytes a pixel."""
    return math.prod(_scaled((width, height), scale)) * DECODED_BYTES_PER_PIXEL


def _jpeg_frame(code: int, frame: bytes, scan_components: int, header_bytes: int) -> Header:
    if len(frame) < 6:
        raise Unreadable("the frame header is corrupt")
    bits, height, width, count = struct.unpack(">BHHB", frame[:6])
    if bits != 8 or count not in (1, 3, 4) or len(frame) < 6 + 3 * count:
        raise Unreadable(f"{bits}-bit samples in {count} components")
    if not (width and height):
        raise Unreadable("the size is not in the frame header")
    factors = [(b >> 4, b & 15) for b in frame[7 : 6 + 3 * count : 3]]
    if not all(1 <= h <= 4 and 1 <= v <= 4 for h, v in factors):
        raise Unreadable("a sampling factor is out of range")
    decoded = _jpeg_decoded_bytes(width, height, JPEG_CHECK_SCALE)
    # One scan with every component (the usual baseline file) is decoded as it streams in;
    # several scans make libjpeg keep every coefficient of every component until the last.
    multi_scan = code == 0xC2 or scan_components < count
    coefficients = 0
    if multi_scan:
        h_max = max(h for h, _ in factors)
        v_max = max(v for _, v in factors)
        mcu_columns, mcu_rows = math.ceil(width / (8 * h_max)), math.ceil(height / (8 * v_max))
        blocks = sum(mcu_columns * h * mcu_rows * v for h, v in factors)
        coefficients = blocks * JPEG_BYTES_PER_BLOCK
    return Header(
        "JPEG",
        width,
        height,
        "a progressive JPEG" if multi_scan else "a JPEG photo",
        pixel_bytes=coefficients + decoded,
        # Pillow keeps each APP segment twice (its list and its dict), ICC profiles once more.
        file_bytes=3 * header_bytes,
    )


# --- GIF ----------------------------------------------------------------------------------


class _GifWalk:
    """The blocks and sub-blocks a GIF of `size` bytes may have, counted as they are read."""

    def __init__(self, size: int) -> None:
        self.blocks_left = GIF_MAX_BLOCKS
        self.sub_blocks_left = size // GIF_BYTES_PER_SUB_BLOCK + 2 * GIF_MAX_BLOCKS

    def block(self) -> None:
        self.blocks_left -= 1
        if self.blocks_left < 0:
            raise Unsupported(
                f"The photo is a GIF of more than {GIF_MAX_BLOCKS} frames and extensions, "
                "which only a damaged or hostile file has; save it again with fewer frames."
            )

    def skip_sub_blocks(self, file: BinaryIO) -> None:
        while length := _read_exactly(file, 1)[0]:
            self.sub_blocks_left -= 1
            if self.sub_blocks_left < 0:
                raise Unreadable("sub-blocks smaller than any encoder writes")
            _read_exactly(file, length)


def _gif_header(file: BinaryIO, size: int) -> Header:
    screen = _read_exactly(file, 13)
    width, height, flags = struct.unpack("<HHB", screen[6:11])
    if flags & 0x80:
        _read_exactly(file, 3 << ((flags & 7) + 1))
    walk = _GifWalk(size)
    frames = 0
    first_frame_at = 0
    while True:
        block = _read_exactly(file, 1)
        if block in (b"!", b","):
            walk.block()
        if block == b"!":
            _read_exactly(file, 1)  # label
            walk.skip_sub_blocks(file)
        elif block == b",":
            x, y, w, h, frame_flags = struct.unpack("<HHHHB", _read_exactly(file, 9))
            # Pillow's canvas grows to a frame that reaches past the screen.
            width, height = max(width, x + w), max(height, y + h)
            if frame_flags & 0x80:
                _read_exactly(file, 3 << ((frame_flags & 7) + 1))
            _read_exactly(file, 1)  # LZW code size
            first_frame_at = first_frame_at or file.tell()
            frames += 1
            walk.skip_sub_blocks(file)
        elif block == b";":
            break
        else:
            raise Unreadable("an unknown block")
    if not frames:
        raise Unreadable("no frame")
    if not (width and height):
        raise Unreadable("the size is zero")
    return Header(
        "GIF",
        width,
        height,
        "a GIF",
        pixel_bytes=GIF_BYTES_PER_PIXEL * width * height,
        # Extensions and comments before the first frame, which Pillow's open() collects.
        file_bytes=2 * first_frame_at,
    )


# --- WebP ---------------------------------------------------------------------------------


def _webp_header(file: BinaryIO, size: int) -> Header:
    riff = file.read(30)
    chunk = riff[12:16]
    # The shortest header, a lossless one's, ends at byte 25: a 1x1 file can be 26 bytes.
    if len(riff) < (25 if chunk == b"VP8L" else 30):
        raise Unreadable("the file ends early")
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(riff[24:27], "little")
        height = 1 + int.from_bytes(riff[27:30], "little")
    elif chunk == b"VP8L":
        if riff[20] != 0x2F:
            raise Unreadable("the lossless stream's signature is wrong")
        bits = int.from_bytes(riff[21:25], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    elif chunk == b"VP8 ":
        if riff[23:26] != b"\x9d\x01\x2a":
            raise Unreadable("the lossy stream's start code is wrong")
        width = int.from_bytes(riff[26:28], "little") & 0x3FFF
        height = int.from_bytes(riff[28:30], "little") & 0x3FFF
    else:
        raise Unreadable("no image chunk")
    if not (width and height):
        raise Unreadable("the size is zero")
    return Header(
        "WEBP",
        width,
        height,
        "a WebP photo",
        pixel_bytes=WEBP_BYTES_PER_PIXEL * width * height,
        # Pillow reads the whole file, and the decoder keeps a copy.
        file_bytes=2 * size,
    )


# --- Decoding with Pillow (JPEG, GIF, WebP) -------------------------------------------------


def _check_with_pillow(file: BinaryIO, header: Header) -> None:
    try:
        with Image.open(file, formats=[header.format]) as image:
            # What Pillow read must be what the estimate was made from: a file its parser
            # reads differently from ours is refused before anything is decoded.
            if header.format == "GIF":
                fits = image.width <= header.width and image.height <= header.height
            else:
                fits = image.size == (header.width, header.height)
            if not fits:
                raise Unreadable("Pillow reads another size from the header")
            if header.format == "JPEG":
                scale = JPEG_CHECK_SCALE
                draft = (max(1, image.width // scale), max(1, image.height // scale))
                image.draft(image.mode, draft)
            # Only the first frame of an animation is decoded.
            image.load()
    except (Unreadable, MemoryError):
        raise
    except Exception as error:
        # Pillow's decoders signal bad input with whatever their parsing hits (OSError,
        # SyntaxError, ValueError, EOFError, struct.error, IndexError...).
        raise Unreadable(str(error)) from None


# --- Thumbnails -------------------------------------------------------------------------------
# A thumbnail is a decode like the check's, then small images only. What it holds:
# - JPEG: decoded by libjpeg at the smallest scale (1/2, 1/4, 1/8) still at least the
#   thumbnail's size (Pillow's draft()); a multi-scan file still holds its coefficients.
# - PNG: decoded whole (the check decoded nothing): at most 4 bytes a pixel, plus the text
#   chunks Pillow keeps, capped at PNG_TEXT_BYTES (a file with more is refused, see below).
# - GIF and WebP: the check's own decode; WebP's peak passes before the rest begins.
# Then: a copy at no more than twice the thumbnail's size (box-averaged for RGB, L and CMYK;
# nearest pixel for palette and alpha images, whose averaging Pillow does on a converted copy
# of the whole image), its conversion to RGB, the thumbnail and its JPEG encoding.
PNG_TEXT_BYTES = MIB
THUMBNAIL_QUALITY = 80


def _reduce_factor(width: int, height: int, side: int) -> int:
    """How much the decoded image is shrunk before the thumbnail is made from it: to no less
    than twice the thumbnail's size, so the last, smooth resize has pixels to average."""
    return max(1, max(width, height) // (2 * side))


def _scaled(size: tuple[int, int], factor: int) -> tuple[int, int]:
    """A size divided by `factor`, rounded up, as libjpeg's scaling and Pillow's reduce()."""
    return math.ceil(size[0] / factor), math.ceil(size[1] / factor)


def _thumbnail_work_bytes(width: int, height: int, side: int) -> int:
    """After the decode: the shrunk copy, its RGB conversion and the white background (each
    at most 4 bytes a pixel), the thumbnail and the JPEG encoder's buffers."""
    shrunk = math.prod(_scaled((width, height), _reduce_factor(width, height, side)))
    return 3 * DECODED_BYTES_PER_PIXEL * shrunk + DECODED_BYTES_PER_PIXEL * side * side + MIB


def _jpeg_thumbnail_scale(width: int, height: int, side: int) -> int:
    """The scale Pillow's JPEG draft() picks for a `side`-pixel box (JpegImageFile.draft)."""
    most = min(width // side, height // side)
    return next((s for s in (8, 4, 2) if most >= s), 1)


def thumbnail_peak_bytes(header: Header, side: int) -> int:
    """The most memory make_thumbnail() allocates for a photo with this header."""
    if header.format == "PNG":
        # Pillow keeps a PNG's private chunks (lowercase second letter): up to the whole
        # file, read in pieces and joined, so twice that for a moment.
        decode = DECODED_BYTES_PER_PIXEL * header.pixels + PNG_TEXT_BYTES + CHECK_OVERHEAD_BYTES
        decode += 2 * header.size
        retained = decode
    elif header.format == "JPEG":
        at_check_scale = _jpeg_decoded_bytes(header.width, header.height, JPEG_CHECK_SCALE)
        scale = _jpeg_thumbnail_scale(header.width, header.height, side)
        decoded = _jpeg_decoded_bytes(header.width, header.height, scale)
        decode = header.peak_bytes - at_check_scale + decoded
        retained = decoded + header.file_bytes + CHECK_OVERHEAD_BYTES
        width, height = _scaled((header.width, header.height), scale)
        return max(decode, retained + _thumbnail_work_bytes(width, height, side))
    elif header.format == "WEBP":
        # libwebp's buffers go once the decode ends; Pillow keeps the RGBA image.
        decode = header.peak_bytes
        retained = DECODED_BYTES_PER_PIXEL * header.pixels + header.file_bytes
        retained += CHECK_OVERHEAD_BYTES
    else:
        decode = retained = header.peak_bytes
    return max(decode, retained + _thumbnail_work_bytes(header.width, header.height, side))


def make_thumbnail(file: BinaryIO, header: Header, side: int) -> bytes:
    """A JPEG of `file`'s first frame within a `side` x `side` box, transparency on white;
    within thumbnail_peak_bytes(). Raises Unreadable for a file Pillow cannot decode."""
    from PIL import PngImagePlugin  # noqa: PLC0415 (only where thumbnails are made)

    # Pillow's default lets a PNG's text chunks take 64 MB; a photo's metadata is far less.
    PngImagePlugin.MAX_TEXT_MEMORY = min(PngImagePlugin.MAX_TEXT_MEMORY, PNG_TEXT_BYTES)
    file.seek(0)
    try:
        with Image.open(file, formats=[header.format]) as image:
            if header.format == "JPEG":
                image.draft(image.mode, (side, side))
            image.load()
            thumbnail = _shrink(image, side)
    except MemoryError:
        raise
    except Exception as error:
        # As in _check_with_pillow: Pillow signals bad input with whatever its parsing hits.
        raise Unreadable(str(error)) from None
    out = io.BytesIO()
    thumbnail.save(out, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return out.getvalue()


def _shrink(image: Image.Image, side: int) -> Image.Image:
    width, height = image.size
    factor = _reduce_factor(width, height, side)
    if factor > 1:
        if image.mode in ("L", "RGB", "CMYK"):
            image = image.reduce(factor)
        else:
            image = image.resize(_scaled(image.size, factor), Image.Resampling.NEAREST)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, "white")
        image.paste(rgba, mask=rgba.getchannel("A"))
    elif image.mode != "RGB":
        image = image.convert("RGB")
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return image
