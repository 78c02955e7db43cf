"""The cat collector's pages, form and photo uploads, and the admin."""

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from PIL import Image

from app.cats.models import Cat
from tests.unit.support import add_cat, image_bytes, stored_files

pytestmark = pytest.mark.django_db
STORED_NAME = re.compile(r"cats/[0-9a-f]{32}\.(jpg|png|gif|webp)")


def upload(name: str, content: bytes, content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def test_home_page_lists_cats_newest_first(client):
    Cat.objects.create(name="Older", age=9)
    Cat.objects.create(name="Newer", age=1)
    page = client.get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("Newer") < html.index("Older")


def test_home_page_pages_by_cursor_without_counting(client, django_assert_max_num_queries):
    Cat.objects.bulk_create([Cat(name=f"Cat {i:02}", age=1) for i in range(30)])
    with django_assert_max_num_queries(1):  # the page itself; no COUNT(*)
        first = client.get("/").content.decode()
    older = re.search(r'href="\?after=([0-9.]+)">Older</a>', first)[1]
    second = client.get(f"/?after={older}").content.decode()
    assert "Newer</a>" in second
    assert "Older</a>" not in second
    assert first.count('class="name"') + second.count('class="name"') == 30
    newer = re.search(r'href="\?before=([0-9.]+)">Newer</a>', second)[1]
    assert client.get(f"/?before={newer}").content.decode().count('class="name"') == 24
    assert client.get("/?after=nonsense").status_code == 404


def test_home_page_without_cats_invites_the_first_one(client):
    assert "No cats yet" in client.get("/").content.decode()


def test_detail_page_and_missing_cat(client):
    cat = Cat.objects.create(name="Felix", breed="Siamese", age=2, description="Loud.")
    page = client.get(f"/cats/{cat.pk}/")
    assert page.status_code == 200
    assert "Siamese" in page.content.decode()
    assert client.get(f"/cats/{cat.pk + 1000}/").status_code == 404


def test_creating_a_cat_saves_it_and_redirects_to_it(member):
    response = add_cat(member)
    cat = Cat.objects.get()
    assert (cat.name, cat.breed, cat.age, cat.description) == ("Mittens", "Tabby", 4, "Naps.")
    assert response.status_code == 302
    assert response["Location"] == f"/cats/{cat.pk}/"
    assert "Mittens was added." in member.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"name": ""}, "name"), ({"age": "41"}, "age"), ({"age": "-1"}, "age"), ({"age": "x"}, "age")],
)
def test_invalid_form_is_shown_again_with_errors(member, fields, field):
    response = add_cat(member, **fields)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not Cat.objects.exists()


def test_editing_a_cat_keeps_its_photo(member, media_root, django_capture_on_commit_callbacks):
    add_cat(member, photo=upload("cat.png", image_bytes()))
    cat = Cat.objects.get()
    photo = cat.photo.name
    with django_capture_on_commit_callbacks(execute=True):
        response = member.post(f"/cats/{cat.pk}/edit/", {"name": "Mittens II", "age": "5"})
    assert response.status_code == 302
    cat.refresh_from_db()
    assert (cat.name, cat.age, cat.photo.name) == ("Mittens II", 5, photo)
    assert stored_files(media_root) == [photo]


def edit_photo(client, cat, **data):
    return client.post(f"/cats/{cat.pk}/edit/", {"name": cat.name, "age": cat.age, **data})


def test_a_replaced_photo_file_is_deleted_once_the_new_one_is_saved(
    member, media_root, django_capture_on_commit_callbacks
):
    add_cat(member, photo=upload("cat.png", image_bytes()))
    cat = Cat.objects.get()
    old = cat.photo.name
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = edit_photo(member, cat, photo=upload("new.gif", image_bytes("GIF")))
    assert response.status_code == 302
    cat.refresh_from_db()
    assert cat.photo.name != old
    # The new photo's thumbnail, made in the request (no worker here), is the one other file.
    assert stored_files(media_root) == sorted([cat.photo.name, cat.thumbnail.name])
    # Delete the old photo, delete its thumbnail, make the new one's.
    assert len(callbacks) == 3


def test_a_cleared_photo_file_is_deleted(member, media_root, django_capture_on_commit_callbacks):
    add_cat(member, photo=upload("cat.png", image_bytes()))
    cat = Cat.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        assert edit_photo(member, cat, **{"photo-clear": "on"}).status_code == 302
    cat.refresh_from_db()
    assert cat.photo.name == ""
    assert stored_files(media_root) == []


def test_a_rejected_replacement_keeps_the_old_photo(
    member, media_root, django_capture_on_commit_callbacks
):
    add_cat(member, photo=upload("cat.png", image_bytes()))
    cat = Cat.objects.get()
    old = cat.photo.name
    with django_capture_on_commit_callbacks(execute=True):
        response = edit_photo(member, cat, photo=upload("new.png", b"not an image"))
    assert response.status_code == 200
    cat.refresh_from_db()
    assert cat.photo.name == old
    assert stored_files(media_root) == [old]


def replace_then_fail(cat) -> None:
    with transaction.atomic():
        cat.photo = upload("new.png", image_bytes())
        cat.save()
        raise RuntimeError("a later step of the same transaction failed")


def test_a_rolled_back_save_keeps_the_old_file(
    member, media_root, django_capture_on_commit_callbacks
):
    add_cat(member, photo=upload("cat.png", image_bytes()))
    cat = Cat.objects.get()
    old = cat.photo.name
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        replace_then_fail(cat)
    assert callbacks == []
    assert Cat.objects.get().photo.name == old
    assert (media_root / old).is_file()


def test_visitors_read_but_cannot_add_or_edit(client, media_root):
    cat = Cat.objects.create(name="Felix", age=2)
    assert client.get("/").status_code == 200
    assert client.get(f"/cats/{cat.pk}/").status_code == 200
    assert client.get("/api/cats/").status_code == 200
    for path in ("/cats/new/", f"/cats/{cat.pk}/edit/"):
        for response in (
            client.get(path),
            client.post(path, {"name": "Taken over", "age": "1"}),
            client.post(path, {"name": "X", "age": "1", "photo": upload("x.png", image_bytes())}),
        ):
            assert response.status_code == 302
            assert response["Location"] == f"/admin/login/?next={path}"
    assert list(Cat.objects.values_list("name", flat=True)) == ["Felix"]
    assert stored_files(media_root) == []


def test_the_admin_login_returns_to_the_form(client, django_user_model):
    django_user_model.objects.create_user("keeper", "k@example.com", "pw-3Kd!q9", is_staff=True)
    login = client.get("/admin/login/?next=/cats/new/")
    assert login.status_code == 200
    response = client.post(
        "/admin/login/?next=/cats/new/",
        {"username": "keeper", "password": "pw-3Kd!q9", "next": "/cats/new/"},
    )
    assert (response.status_code, response["Location"]) == (302, "/cats/new/")
    assert client.get("/cats/new/").status_code == 200


def test_a_cat_whose_photo_file_is_gone_can_still_be_edited(member, media_root):
    add_cat(member, photo=upload("cat.png", image_bytes()))
    cat = Cat.objects.get()
    (media_root / cat.photo.name).unlink()
    response = member.post(f"/cats/{cat.pk}/edit/", {"name": "Mittens", "age": "6"})
    assert response.status_code == 302
    cat.refresh_from_db()
    assert cat.age == 6


@pytest.mark.parametrize(
    ("name", "format_", "extension"),
    [
        ("cat.png", "PNG", "png"),
        ("CAT.JPEG", "JPEG", "jpg"),
        ("cat.jpg", "JPEG", "jpg"),
        ("cat.gif", "GIF", "gif"),
        ("cat.webp", "WEBP", "webp"),
    ],
)
def test_photo_is_stored_under_a_generated_name(member, media_root, name, format_, extension):
    content = image_bytes(format_)
    response = add_cat(member, photo=upload(name, content))
    assert response.status_code == 302
    cat = Cat.objects.get()
    assert STORED_NAME.fullmatch(cat.photo.name)
    assert cat.photo.name.endswith(f".{extension}")
    assert (media_root / cat.photo.name).read_bytes() == content
    assert f'src="/media/{cat.photo.name}"' in member.get(f"/cats/{cat.pk}/").content.decode()


def test_client_path_never_reaches_the_disk(member, media_root):
    add_cat(member, photo=upload("../../../etc/evil name.png", image_bytes()))
    cat = Cat.objects.get()
    assert STORED_NAME.fullmatch(cat.photo.name)
    assert stored_files(media_root) == [cat.photo.name]


def rejected(client, media_root, photo) -> str:
    response = add_cat(client, photo=photo)
    assert response.status_code == 200
    assert not Cat.objects.exists()
    assert stored_files(media_root) == []
    return " ".join(response.context["form"].errors["photo"])


def test_a_file_that_is_not_an_image_is_rejected(member, media_root):
    message = rejected(member, media_root, upload("cat.png", b"<html>not a cat</html>"))
    assert message == "The file is not an image that can be read."


def test_a_truncated_image_is_rejected(member, media_root):
    buffer = io.BytesIO()
    Image.effect_noise((400, 400), 64).convert("RGB").save(buffer, format="PNG")
    truncated = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    message = rejected(member, media_root, upload("cat.png", truncated))
    assert message == "The file is not an image that can be read."


def test_an_image_with_too_many_pixels_is_rejected(member, media_root):
    buffer = io.BytesIO()
    Image.new("1", (8000, 6000)).save(buffer, format="PNG")  # 48 megapixels in a few kB
    message = rejected(member, media_root, upload("cat.png", buffer.getvalue()))
    assert "48.0 megapixels; the limit is 40.0" in message


def test_a_photo_over_the_upload_limit_is_rejected(member, media_root, settings):
    settings.UPLOAD_MAX_MB = 1
    settings.UPLOAD_MAX_BYTES = 1024 * 1024
    buffer = io.BytesIO()
    Image.effect_noise((800, 800), 100).convert("RGB").save(buffer, format="PNG")
    assert buffer.tell() > settings.UPLOAD_MAX_BYTES
    message = rejected(member, media_root, upload("cat.png", buffer.getvalue()))
    assert "the limit is 1 MB" in message


@pytest.mark.parametrize(
    ("name", "format_", "expected"),
    [
        ("cat.jpg", "PNG", "ends in .jpg but the file is a PNG image"),
        ("cat.png", "JPEG", "ends in .png but the file is a JPEG image"),
        ("cat.gif", "WEBP", "ends in .gif but the file is a WEBP image"),
    ],
)
def test_an_extension_that_contradicts_the_content_is_rejected(
    member, media_root, name, format_, expected
):
    assert expected in rejected(member, media_root, upload(name, image_bytes(format_)))


@pytest.mark.parametrize("name", ["cat.html", "cat.svg", "cat", "cat.png.exe"])
def test_a_name_without_an_image_extension_is_rejected(member, media_root, name):
    message = rejected(member, media_root, upload(name, image_bytes("PNG")))
    assert message == (
        "Upload a JPEG, PNG, GIF or WebP photo "
        "(file name ending in .jpg, .jpeg, .png, .gif, .webp)."
    )


def test_an_image_format_outside_the_allowed_set_is_rejected(member, media_root):
    message = rejected(member, media_root, upload("cat.bmp", image_bytes("BMP")))
    assert "Upload a JPEG, PNG, GIF or WebP photo" in message


def test_a_disallowed_format_behind_an_allowed_extension_is_rejected(member, media_root):
    message = rejected(member, media_root, upload("cat.png", image_bytes("BMP")))
    assert "The file is in BMP format" in message


class TestAdmin:
    @pytest.fixture
    def admin_user(self):
        return get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-9x!Lq")

    def test_login_page_loads_its_stylesheet(self, client):
        page = client.get("/admin/login/")
        assert page.status_code == 200
        assert re.search(r'href="/static/admin/css/base\.[0-9a-f]{12}\.css"', page.content.decode())

    def test_anonymous_users_are_sent_to_the_login_page(self, client):
        response = client.get("/admin/cats/cat/")
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")

    def test_staff_see_the_cats(self, client, admin_user):
        Cat.objects.create(name="Garfield", age=7)
        client.force_login(admin_user)
        page = client.get("/admin/cats/cat/")
        assert page.status_code == 200
        assert "Garfield" in page.content.decode()

    def test_admin_uploads_are_validated_too(self, client, admin_user, media_root):
        client.force_login(admin_user)
        response = client.post(
            "/admin/cats/cat/add/",
            {"name": "Tom", "age": "3", "photo": upload("tom.jpg", image_bytes("PNG"))},
        )
        assert response.status_code == 200
        assert not Cat.objects.exists()
        assert stored_files(media_root) == []
