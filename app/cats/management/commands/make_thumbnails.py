"""python manage.py make_thumbnails: a thumbnail for every photo that has none.

For photos stored before thumbnails existed, and to run again what the worker parked
(app.cats.tasks): queued for the worker when one runs, else made here, one at a time.
"""

from django.core.management.base import BaseCommand
from django.db.models import Q

from app.cats import dispatch
from app.cats.models import Cat


class Command(BaseCommand):
    help = "Make (or queue) the thumbnail of every photo that has none."

    def handle(self, *args, **options) -> None:
        # NULL from rows written before the column existed or by the release before it; ""
        # from a save that dropped a replaced photo's thumbnail.
        missing = Cat.objects.exclude(photo="").filter(Q(thumbnail__isnull=True) | Q(thumbnail=""))
        count = 0
        for cat_id, photo_name in missing.values_list("pk", "photo").iterator():
            dispatch.schedule(cat_id, photo_name)
            count += 1
        self.stdout.write(f"{count} thumbnail(s) asked for")
