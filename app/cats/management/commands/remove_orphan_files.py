"""python manage.py remove_orphan_files [--delete]: photo and thumbnail files no cat points at.

Earlier releases left them behind (a deleted cat kept its files), and a file whose removal
failed stays too (app.cats.models logs it). Lists them by default; removes them with --delete.
A file younger than MIN_AGE is never counted: an upload's file is stored before its row
commits, and a thumbnail is written before it is recorded.
"""

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from app.cats import files
from app.cats.models import Cat

MIN_AGE_S = 3600
FOLDERS = ("cats", files.THUMBNAILS)


class Command(BaseCommand):
    help = "List (or with --delete, remove) photo and thumbnail files that no cat points at."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--delete", action="store_true", help="remove them, not just list")

    def handle(self, *args, delete: bool, **options) -> None:
        kept = set()
        for photo, thumbnail in Cat.objects.values_list("photo", "thumbnail").iterator():
            if photo:
                # A thumbnail being made for it is not yet recorded, but is no orphan.
                kept.update((photo, files.thumbnail_name(photo)))
            if thumbnail:
                kept.add(thumbnail)
        root = Path(settings.MEDIA_ROOT)
        newest = time.time() - MIN_AGE_S
        orphans = [
            path
            for folder in FOLDERS
            if (root / folder).is_dir()
            for path in sorted((root / folder).iterdir())
            if path.is_file()
            and path.relative_to(root).as_posix() not in kept
            and path.stat().st_mtime < newest
        ]
        size = 0
        for path in orphans:
            size += path.stat().st_size
            if delete:
                path.unlink()
            self.stdout.write(path.relative_to(root).as_posix())
        verb = "removed" if delete else "found (run again with --delete to remove them)"
        self.stdout.write(f"{len(orphans)} orphan file(s), {size / 2**20:.1f} MiB, {verb}")
