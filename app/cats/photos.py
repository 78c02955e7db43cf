"""Photo uploads: proven to be whole images of an accepted format, checked within a memory
bound, stored under a name the server makes up (the client's file name never reaches the disk).

The memory rule. A photo is small on the wire and large in memory once decoded (a PNG of
6320x6320 pixels, 131 kB, decodes to 152 MiB; a WebP costs 16 bytes a pixel), so each check
is costed from the file's header before anything is decoded (app.cats.formats, per format):

1. Decided from the header: the format (it must match the file name's extension), the size
   (at most MAX_PIXELS), and the check's peak memory, which may not exceed PHOTO_CHECK_BYTES.
   That gives each format its own pixel limit: 40 megapixels for PNG, GIF and baseline JPEG,
   30 for a progressive JPEG with full-resolution colour (22.6 in CMYK), 11.4 for WebP (10 for
   a 10 MB file; pixel_limit() works it out, docs/operations.md, Sizing, lists them).
2. Checks that need more than UNSLOTTED_BYTES (a decode of more than about 30 megapixels of
   baseline JPEG, 1 of GIF, 0.1 of WebP; never PNG, whose check decodes no pixel) run only
   while holding one of a fixed number of slots, shared by every worker process and thread of
   the container (app.cats.slots). There are (the memory for checks) // PHOTO_CHECK_BYTES of
   them, at least one: the settings work out that memory from the container's limit, web's
   (PHOTO_CHECK_MEMORY_BYTES) and the worker's (CELERY_PHOTO_CHECK_MEMORY_BYTES).
3. A check that finds no slot free within PHOTO_CHECK_WAIT_SECONDS is refused with the code
   BUSY; the views answer 503 with Retry-After: the server's capacity, not the client's rate.

So the photo checks of one container never hold more than slots x PHOTO_CHECK_BYTES plus
UNSLOTTED_BYTES per request in progress, at any concurrency.

Thumbnails (app.cats.thumbnails) follow the same rule, in web and in the worker alike: their
peak is worked out from the header (formats.thumbnail_peak_bytes), may not exceed
PHOTO_CHECK_BYTES, and takes a slot above UNSLOTTED_BYTES (memory_for); the worker's slots are
sized from its own container's memory and processes.
"""

import logging
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import ValidationError

from app.cats import formats
from app.cats.slots import NoSlotFree, Slots

# Decoded format -> the extensions a file of that format may carry; the first is canonical.
FORMATS = {
    "JPEG": ("jpg", "jpeg"),
    "PNG": ("png",),
    "GIF": ("gif",),
    "WEBP": ("webp",),
}
EXTENSIONS = {ext: format_ for format_, exts in FORMATS.items() for ext in exts}
MIB = formats.MIB
MAX_PIXELS = 40_000_000
# The most memory one check may take: a 10-megapixel WebP of a 10 MB file (16 bytes a pixel,
# its file twice, the overhead: 174.6 MiB). It is also the size of a slot.
PHOTO_CHECK_BYTES = 176 * MIB
# Checks estimated at no more than this run without a slot: the PNG check (about 0.5 MiB
# measured, at any size) and the small decodes, which a slot would only queue behind the large.
UNSLOTTED_BYTES = 4 * MIB
SLOT_NAME = "catcollector-photo-check"
# The error code a view turns into 503 Service Unavailable.
BUSY = "busy"
# Advice when a format's own limit is what refuses the photo.
SMALLER = {
    "a progressive JPEG": "Save it as a standard (baseline) JPEG, or smaller.",
    "a WebP photo": "Save it smaller, or as a JPEG or PNG.",
}

# Formats refused by name (_other_format): their signatures at the start of the file, and the
# brands of the ISO container (HEIF and AVIF) at bytes 8 to 12.
OTHER_FORMATS = (
    (b"II*\0", "TIFF"),
    (b"MM\0*", "TIFF"),
    (b"BM", "BMP"),
    (b"\0\0\1\0", "ICO"),
    (b"8BPS", "PSD"),
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"\0\0\0\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\0\0\0\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
)
ISO_BRANDS = {
    b"avif": "AVIF",
    b"avis": "AVIF",
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
}
OTHER_FORMAT_PREFIX = 16

logger = logging.getLogger(__name__)


def _extension(name: str) -> str:
    return PurePath(name).suffix.lower().lstrip(".")


def validate_photo(upload) -> None:
    # Model validation runs on every save; a photo already stored was checked when it arrived,
    # and re-reading it would turn a file lost from the volume into a server error on edit.
    if getattr(upload, "_committed", False):
        return
    if upload.size > settings.UPLOAD_MAX_BYTES:
        raise ValidationError(
            "The photo is %(size).1f MB; the limit is %(limit)d MB.",
            code="too_large",
            params={"size": upload.size / 1024 / 1024, "limit": settings.UPLOAD_MAX_MB},
        )
    extension = _extension(upload.name)
    if extension not in EXTENSIONS:
        raise ValidationError(
            "Upload a JPEG, PNG, GIF or WebP photo (file name ending in %(allowed)s).",
            code="bad_extension",
            params={"allowed": ", ".join(f".{ext}" for ext in EXTENSIONS)},
        )
    position = upload.tell()
    try:
        header = _header(upload)
        if EXTENSIONS[extension] != header.format:
            raise ValidationError(
                "The file name ends in .%(extension)s but the file is a %(format)s image.",
                code="extension_mismatch",
                params={"extension": extension, "format": header.format},
            )
        _within_limits(header)
        _check(upload, header)
    except ValidationError:
        raise
    except Exception:
        # A file no check foresaw is still only a file: refused, and logged for a fix.
        logger.exception("photo check failed unexpectedly; the upload is refused as unreadable")
        raise _not_an_image() from None
    finally:
        upload.seek(position)


def _header(upload) -> formats.Header:
    try:
        return formats.read_header(upload, upload.size)
    except formats.UnknownFormat:
        raise ValidationError(
            "The file is in %(format)s format; upload a JPEG, PNG, GIF or WebP photo.",
            code="bad_format",
            params={"format": _other_format(upload.read(OTHER_FORMAT_PREFIX))},
        ) from None
    except formats.Unsupported as refused:
        raise ValidationError(str(refused), code="unsupported") from None
    except formats.Unreadable:
        raise _not_an_image() from None


def _other_format(start: bytes) -> str:
    """The name of an image format that is not accepted, for the message, from the file's
    first bytes only: a refused file is never parsed (Pillow's plugins would each read it
    their own way, at their own cost). Not one of these: refused as unreadable."""
    for magic, name in OTHER_FORMATS:
        if start.startswith(magic):
            return name
    if start[4:8] == b"ftyp" and start[8:12] in ISO_BRANDS:
        return ISO_BRANDS[start[8:12]]
    raise _not_an_image()


def _not_an_image() -> ValidationError:
    return ValidationError("The file is not an image that can be read.", code="not_an_image")


def within_limits(header: formats.Header) -> bool:
    """Whether a photo with this header may be checked at all."""
    return header.pixels <= MAX_PIXELS and header.peak_bytes <= PHOTO_CHECK_BYTES


def pixel_limit(header: formats.Header) -> int:
    """About the most pixels a photo of `header`'s format and file size may have, for
    messages (a JPEG's cost per pixel varies a little with its size, by rounding to blocks)."""
    per_pixel = header.pixel_bytes / header.pixels
    if not per_pixel:
        return MAX_PIXELS
    room = PHOTO_CHECK_BYTES - formats.CHECK_OVERHEAD_BYTES - header.file_bytes
    return max(0, min(MAX_PIXELS, math.floor(room / per_pixel)))


def _within_limits(header: formats.Header) -> None:
    if within_limits(header):
        return
    if header.pixels > MAX_PIXELS:
        raise ValidationError(
            "The photo is %(pixels).1f megapixels; the limit is %(limit).1f.",
            code="too_many_pixels",
            params={"pixels": header.pixels / 1e6, "limit": MAX_PIXELS / 1e6},
        )
    if pixel_limit(header) == 0:
        # Possible only with UPLOAD_MAX_MB raised far: the file's own bytes, which the check
        # holds in memory, leave no room for any pixel.
        raise ValidationError(
            "The file is too large to check as %(kind)s; save it smaller.",
            code="too_large",
            params={"kind": header.kind},
        )
    raise ValidationError(
        "The photo is %(pixels).1f megapixels; for %(kind)s the limit is %(limit).1f. %(advice)s",
        code="too_many_pixels",
        params={
            "pixels": header.pixels / 1e6,
            "kind": header.kind,
            # Rounded down: the limit shown is one a photo can reach.
            "limit": math.floor(pixel_limit(header) / 1e5) / 10,
            "advice": SMALLER.get(header.kind, "Save it smaller."),
        },
    )


def slot_count(memory_bytes: int) -> int:
    """The slots that `memory_bytes` for checks (the container's, from the settings) holds."""
    return max(1, memory_bytes // PHOTO_CHECK_BYTES)


@contextmanager
def memory_for(peak_bytes: int, wait_s: float, memory_bytes: int) -> Iterator[None]:
    """Holds what a decode of `peak_bytes` needs: a slot above UNSLOTTED_BYTES (rule 2), else
    nothing, of the slots `memory_bytes` holds. Raises NoSlotFree when none frees within
    `wait_s`. Checks and thumbnails alike."""
    if peak_bytes <= UNSLOTTED_BYTES:
        yield
        return
    slots = Slots(settings.PHOTO_CHECK_SLOT_DIR, SLOT_NAME, slot_count(memory_bytes))
    with slots.hold(wait_s):
        yield


def _check(upload, header: formats.Header) -> None:
    try:
        with memory_for(header.peak_bytes, settings.PHOTO_CHECK_WAIT_SECONDS,
                        settings.PHOTO_CHECK_MEMORY_BYTES):  # fmt: skip
            formats.check(upload, header)
    except formats.Unreadable:
        raise _not_an_image() from None
    except NoSlotFree as busy:
        logger.warning("photo check refused, server busy: %s", busy)
        raise ValidationError(
            "The server is busy checking other photos; please try again in a few seconds.",
            code=BUSY,
        ) from None


def photo_path(instance, filename: str) -> str:
    """A fresh random name with the canonical extension of the (already validated) format."""
    format_ = EXTENSIONS.get(_extension(filename))
    extension = FORMATS[format_][0] if format_ else "bin"
    return f"cats/{uuid.uuid4().hex}.{extension}"
