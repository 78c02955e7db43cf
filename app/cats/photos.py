"""Photo uploads: proven to be images by decoding them, bounded in size, stored under a name
the server makes up (the client's file name never reaches the disk)."""

import uuid
import warnings
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image

# Decoded format -> the extensions a file of that format may carry; the first is canonical.
FORMATS = {
    "JPEG": ("jpg", "jpeg"),
    "PNG": ("png",),
    "GIF": ("gif",),
    "WEBP": ("webp",),
}
EXTENSIONS = {ext: format_ for format_, exts in FORMATS.items() for ext in exts}
# A small file can still decode to a huge bitmap; this bounds the memory one upload can use.
MAX_PIXELS = 40_000_000


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
    format_ = _decoded_format(upload)
    if format_ not in FORMATS:
        raise ValidationError(
            "The file is a %(format)s image; upload a JPEG, PNG, GIF or WebP photo.",
            code="bad_format",
            params={"format": format_},
        )
    if EXTENSIONS[extension] != format_:
        raise ValidationError(
            "The file name ends in .%(extension)s but the file is a %(format)s image.",
            code="extension_mismatch",
            params={"extension": extension, "format": format_},
        )


def _decoded_format(upload) -> str:
    position = upload.tell()
    upload.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(upload) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise ValidationError(
                        "The photo is %(pixels)d megapixels; the limit is %(limit)d.",
                        code="too_many_pixels",
                        params={
                            "pixels": image.width * image.height // 1_000_000,
                            "limit": MAX_PIXELS // 1_000_000,
                        },
                    )
                # Decoding every pixel (not just the header) rejects truncated or corrupt files.
                image.load()
                return image.format or "unknown"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Warning):
        raise ValidationError(
            "The file is not an image that can be read.", code="not_an_image"
        ) from None
    finally:
        upload.seek(position)


def photo_path(instance, filename: str) -> str:
    """A fresh random name with the canonical extension of the (already validated) format."""
    format_ = EXTENSIONS.get(_extension(filename))
    extension = FORMATS[format_][0] if format_ else "bin"
    return f"cats/{uuid.uuid4().hex}.{extension}"
