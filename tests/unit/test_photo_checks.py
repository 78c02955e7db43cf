"""Photo checks within their memory bound (app.cats.photos, app.cats.formats), through the
form as a signed-in user posts it: what the header decides before any decoding, what each
format's check catches, the per-format limits, and the 503 when no check can run."""

import io
import math
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from app.cats import formats, photos
from app.cats.models import Cat
from app.cats.slots import Slots
from tests.harness.photos import (
    COLOUR,
    ISSUE_PNG_SIDE,
    MAKERS,
    encoded,
    header_of,
    largest_square,
    noise,
)
from tests.unit.support import add_cat, run_python, stored_files

pytestmark = pytest.mark.django_db


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def refused(client, media_root, name: str, content: bytes, status: int = 200):
    """The form came back with an error on the photo, and nothing was kept."""
    response = add_cat(client, photo=upload(name, content))
    assert response.status_code == status
    assert not Cat.objects.exists()
    assert stored_files(media_root) == []
    return response, " ".join(response.context["form"].errors["photo"])


def accepted(client, media_root, name: str, content: bytes) -> None:
    response = add_cat(client, photo=upload(name, content))
    errors = response.context["form"].errors if response.context else None
    assert response.status_code == 302, errors
    assert (media_root / Cat.objects.get().photo.name).read_bytes() == content


# --- Headers alone: files with nothing after the header, so any decode would fail -----------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return formats.PNG_SIGNATURE + png_chunk(b"IHDR", ihdr)


def webp_header_only(width: int, height: int) -> bytes:
    vp8x = b"\0\0\0\0" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def jpeg_header_only(width: int, height: int, frame: int = 0xC2, sampling: int = 0x11) -> bytes:
    """SOI, a frame header (progressive by default, three components) and a scan header."""
    components = b"".join(bytes([i, sampling, 0]) for i in (1, 2, 3))
    sof = struct.pack(">BHHB", 8, height, width, 3) + components
    sos = bytes([3, 1, 0, 2, 0, 3, 0, 0, 63, 0])
    return (
        b"\xff\xd8"
        + bytes([0xFF, frame])
        + struct.pack(">H", 2 + len(sof))
        + sof
        + b"\xff\xda"
        + struct.pack(">H", 2 + len(sos))
        + sos
    )


@pytest.fixture
def slots_taken(settings, tmp_path):
    """Every photo-check slot held by someone else, and a short wait for one."""
    settings.PHOTO_CHECK_SLOT_DIR = str(tmp_path)
    settings.PHOTO_CHECK_MEMORY_BYTES = 0  # one slot
    settings.PHOTO_CHECK_WAIT_SECONDS = 1
    with Slots(tmp_path, photos.SLOT_NAME, 1).hold(0):
        yield


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("big.png", png_header_only(8000, 6000), "48.0 megapixels; the limit is 40.0."),
        (
            "big.webp",
            webp_header_only(4000, 4000),
            "16.0 megapixels; for a WebP photo the limit is 11.4. Save it smaller, or as a JPEG",
        ),
        (
            "big.jpg",
            jpeg_header_only(6000, 6000),
            "36.0 megapixels; for a progressive JPEG the limit is 30.0. Save it as a standard "
            "(baseline) JPEG",
        ),
        ("huge.jpg", jpeg_header_only(8000, 8000, frame=0xC0), "64.0 megapixels; the limit"),
    ],
    ids=["png", "webp", "progressive-jpeg", "baseline-jpeg"],
)
@pytest.mark.usefixtures("slots_taken")
def test_a_photo_over_its_format_limit_is_refused_from_its_header(
    member, media_root, name, content, message
):
    """The files hold nothing but a header, and every slot is taken: a decode would have
    answered "not an image", waiting for a slot 503."""
    _, error = refused(member, media_root, name, content)
    assert message in error


def test_a_file_too_large_to_hold_for_its_check_is_refused(member, media_root, monkeypatch):
    """Only with UPLOAD_MAX_MB raised far; here the ceiling is lowered instead (the WebP check
    holds its file twice)."""
    webp = webp_header_only(100, 100) + bytes(3 * formats.MIB)
    monkeypatch.setattr(photos, "PHOTO_CHECK_BYTES", 6 * formats.MIB)
    _, error = refused(member, media_root, "big.webp", webp)
    assert error == "The file is too large to check as a WebP photo; save it smaller."


def test_the_extension_is_compared_with_the_header_before_any_decode(member, media_root):
    _, error = refused(member, media_root, "cat.gif", png_header_only(64, 48))
    assert "ends in .gif but the file is a PNG image" in error


def test_a_jpeg_browsers_do_not_show_is_refused(member, media_root):
    lossless = jpeg_header_only(64, 48, frame=0xC3)
    _, error = refused(member, media_root, "cat.jpg", lossless)
    assert "lossless, hierarchical or arithmetic-coded JPEG" in error


# --- Each format's check: whole, valid files only --------------------------------------------


def cut(content: bytes, fraction: float = 0.6) -> bytes:
    return content[: int(len(content) * fraction)]


def png_rows_short() -> bytes:
    """A PNG whose every chunk and CRC is valid, but whose image data is ten bytes short: what
    Pillow's verify() passes."""
    width, height = 40, 30
    rows = b"".join(b"\0" + bytes(3 * width) for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        formats.PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(rows[:-10]))
        + png_chunk(b"IEND", b"")
    )


def animated_gif() -> bytes:
    frames = [noise("P", (120, 80)) for _ in range(4)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("cut.png", cut(encoded(noise(), "PNG"))),
        ("short-rows.png", png_rows_short()),
        ("cut.jpg", cut(encoded(noise(), "JPEG"))),
        ("cut-progressive.jpg", cut(encoded(noise(), "JPEG", progressive=True))),
        # Cut after its first frame: decoding that frame alone would not notice.
        ("cut-animation.gif", cut(animated_gif(), 0.9)),
        ("cut.webp", cut(encoded(noise(), "WEBP"))),
    ],
)
def test_a_truncated_or_corrupt_file_is_refused(member, media_root, name, content):
    _, error = refused(member, media_root, name, content)
    assert error == "The file is not an image that can be read."


def test_a_png_with_a_flipped_byte_is_refused(member, media_root):
    content = bytearray(encoded(noise(), "PNG"))
    content[len(content) // 2] ^= 0xFF
    _, error = refused(member, media_root, "cat.png", bytes(content))
    assert error == "The file is not an image that can be read."


def interlaced_png(width: int, height: int) -> bytes:
    """Adam7 (Pillow cannot write it): every pass's rows, filter byte 0, black pixels."""
    data = b""
    for x, y, dx, dy in formats.ADAM7:
        if width > x and height > y:
            pass_width, pass_height = math.ceil((width - x) / dx), math.ceil((height - y) / dy)
            data += (b"\0" + bytes(3 * pass_width)) * pass_height
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    return (
        formats.PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(data))
        + png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        *[(f"{mode}.png", encoded(noise(mode), "PNG")) for mode in ("1", "L", "LA", "P", "RGBA")],
        ("16-bit.png", encoded(noise("I").convert("I;16"), "PNG")),
        ("interlaced.png", interlaced_png(9, 17)),
        ("baseline.jpg", encoded(noise(), "JPEG")),
        ("progressive-444.jpg", encoded(noise(), "JPEG", progressive=True, subsampling=0)),
        ("cmyk.jpg", encoded(noise("CMYK"), "JPEG", progressive=True)),
        ("animation.gif", animated_gif()),
        ("lossless.webp", encoded(noise("RGBA"), "WEBP", lossless=True)),
    ],
)
def test_valid_photos_of_every_kind_are_accepted(member, media_root, name, content):
    assert Image.open(io.BytesIO(content)).load() is not None  # Pillow reads it whole
    accepted(member, media_root, name, content)


# --- At the limits --------------------------------------------------------------------------


@pytest.mark.parametrize("extension", MAKERS)
def test_a_photo_at_its_format_limit_is_accepted_and_a_larger_one_is_not(
    member, media_root, extension
):
    side, largest = largest_square(extension)
    assert header_of(largest).format == photos.EXTENSIONS[extension]
    accepted(member, media_root, f"cat.{extension}", largest)
    kept = stored_files(media_root)
    response = add_cat(member, photo=upload(f"cat.{extension}", MAKERS[extension](side + 1)))
    assert response.status_code == 200
    assert "megapixels" in " ".join(response.context["form"].errors["photo"])
    assert Cat.objects.count() == 1
    assert stored_files(media_root) == kept


# --- No slot free: 503 ----------------------------------------------------------------------


def test_no_free_slot_answers_503_with_retry_after_and_the_form(member, media_root, slots_taken):
    big_gif = encoded(Image.new("P", (2000, 2000), 3), "GIF")  # 8 MB to decode: needs a slot
    response, error = refused(member, media_root, "cat.gif", big_gif, status=503)
    assert response["Retry-After"] == "1"
    assert "busy checking other photos" in error
    assert 'name="name" value="Mittens"' in response.content.decode()


def test_checks_that_need_no_slot_run_while_every_slot_is_taken(member, media_root, slots_taken):
    side = ISSUE_PNG_SIDE
    accepted(member, media_root, "cat.png", encoded(Image.new("RGB", (side, side), COLOUR), "PNG"))


def test_an_edit_waits_for_a_slot_too_and_keeps_the_old_photo(member, media_root, settings):
    accepted(member, media_root, "cat.png", encoded(noise(), "PNG"))
    cat = Cat.objects.get()
    settings.PHOTO_CHECK_SLOT_DIR = str(media_root.parent)
    settings.PHOTO_CHECK_MEMORY_BYTES = 0
    settings.PHOTO_CHECK_WAIT_SECONDS = 1
    big_gif = encoded(Image.new("P", (2000, 2000), 3), "GIF")
    with Slots(media_root.parent, photos.SLOT_NAME, 1).hold(0):
        response = member.post(
            f"/cats/{cat.pk}/edit/",
            {"name": "Mittens", "age": "4", "photo": upload("n.gif", big_gif)},
        )
    assert response.status_code == 503
    assert Cat.objects.get().photo.name == cat.photo.name
    response = member.post(
        f"/cats/{cat.pk}/edit/", {"name": "Mittens", "age": "4", "photo": upload("n.gif", big_gif)}
    )
    assert response.status_code == 302
    assert Cat.objects.get().photo.name.endswith(".gif")


# --- Sizing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("memory", "slots"),
    [(0, 1), (photos.PHOTO_CHECK_BYTES - 1, 1), (3 * photos.PHOTO_CHECK_BYTES, 3)],
)
def test_one_slot_per_photo_check_size_of_memory_and_never_none(memory, slots):
    assert photos.slot_count(memory) == slots


def test_the_memory_for_photo_checks_leaves_each_worker_its_share():
    def budget(workers: str) -> int:
        result = run_python(
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.PHOTO_CHECK_MEMORY_BYTES, settings.WORKER_MEMORY_BYTES)",
            env={"GUNICORN_WORKERS": workers},
        )
        assert result.returncode == 0, result.stderr
        return tuple(map(int, result.stdout.split()))

    (one, per_worker), (eight, _) = budget("1"), budget("8")
    assert one - eight == 7 * per_worker


# --- A check's own failure: a refusal, never a server error ----------------------------------
# (The hostile files themselves, each with its CPU and memory: tests/unit/test_hostile_files.py.)


def test_an_unforeseen_error_in_a_check_is_a_refusal_and_a_log_line(
    member, media_root, monkeypatch, caplog
):
    """Any exception a check raises (a parser's bug) refuses the file with the unreadable
    message and logs it with its traceback; the page is the form again, never a 500."""

    def broken(file, header):
        raise KeyError("a parser's bug")

    monkeypatch.setattr(formats, "check", broken)
    with caplog.at_level("ERROR", logger="app.cats.photos"):
        _, error = refused(member, media_root, "cat.png", encoded(noise(), "PNG"))
    assert error == "The file is not an image that can be read."
    [record] = [r for r in caplog.records if r.name == "app.cats.photos"]
    assert "refused as unreadable" in record.getMessage()
    assert record.exc_info[0] is KeyError
