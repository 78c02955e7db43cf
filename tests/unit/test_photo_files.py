"""Files follow their rows (app.cats.models): a deleted cat's photo and thumbnail go once the
deletion commits, whoever deletes it, and stay when it rolls back; remove_orphan_files finds
what earlier releases left (a listing by default, removal with --delete), never a file that
may still be an upload in flight."""

import io
import os
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction

from app.cats.management.commands.remove_orphan_files import MIN_AGE_S
from app.cats.models import Cat
from tests.unit.support import add_cat, image_bytes, stored_files
from tests.unit.test_cats import upload

pytestmark = pytest.mark.django_db


def cat_with_a_photo(client, on_commit, name: str = "cat.png", format_: str = "PNG") -> Cat:
    with on_commit(execute=True):
        add_cat(client, photo=upload(name, image_bytes(format_)))
    cat = Cat.objects.latest("pk")
    assert cat.thumbnail  # made in the request: no worker here
    return cat


def test_a_cat_deleted_in_the_admin_takes_its_files_once_committed(
    client, media_root, django_capture_on_commit_callbacks
):
    admin = get_user_model().objects.create_superuser("admin", "a@example.com", "pw-9x!Lq")
    client.force_login(admin)
    cat = cat_with_a_photo(client, django_capture_on_commit_callbacks)
    assert len(stored_files(media_root)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(f"/admin/cats/cat/{cat.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    assert not Cat.objects.exists()
    assert stored_files(media_root) == []


def test_a_queryset_delete_takes_every_cats_files(
    member, media_root, django_capture_on_commit_callbacks
):
    cat_with_a_photo(member, django_capture_on_commit_callbacks)
    cat_with_a_photo(member, django_capture_on_commit_callbacks, "other.gif", "GIF")
    assert len(stored_files(media_root)) == 4
    with django_capture_on_commit_callbacks(execute=True):
        Cat.objects.all().delete()
    assert stored_files(media_root) == []


class Undone(Exception):
    pass


def delete_then_fail(cat: Cat) -> None:
    with transaction.atomic():
        cat.delete()
        raise Undone


def test_a_deletion_rolled_back_keeps_the_files(
    member, media_root, django_capture_on_commit_callbacks
):
    cat = cat_with_a_photo(member, django_capture_on_commit_callbacks)
    pk, before = cat.pk, stored_files(media_root)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(Undone):
        delete_then_fail(cat)
    assert callbacks == []
    assert Cat.objects.filter(pk=pk).exists()
    assert stored_files(media_root) == before


def age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_orphans_are_listed_then_removed_and_recent_files_are_left(
    member, media_root, django_capture_on_commit_callbacks
):
    cat = cat_with_a_photo(member, django_capture_on_commit_callbacks)
    kept = stored_files(media_root)
    for name in ("cats/0123abcd.png", f"thumbs/{'f' * 32}.jpg"):
        (media_root / name).write_bytes(b"left by an earlier release")
        age(media_root / name, MIN_AGE_S + 60)
    (media_root / "cats/in-flight.png").write_bytes(b"an upload whose row is not committed")
    for name in kept:
        age(media_root / name, MIN_AGE_S + 60)

    listed = run("remove_orphan_files")
    assert listed.splitlines() == [
        "cats/0123abcd.png",
        f"thumbs/{'f' * 32}.jpg",
        "2 orphan file(s), 0.0 MiB, found (run again with --delete to remove them)",
    ]
    assert len(stored_files(media_root)) == len(kept) + 3

    removed = run("remove_orphan_files", "--delete")
    assert removed.splitlines()[-1] == "2 orphan file(s), 0.0 MiB, removed"
    assert stored_files(media_root) == sorted([*kept, "cats/in-flight.png"])
    cat.refresh_from_db()
    assert (media_root / cat.photo.name).exists()


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()
