from functools import partial

from django.core.validators import MaxValueValidator
from django.db import models, transaction
from django.db.models.signals import post_delete
from django.dispatch import Signal, receiver
from django.urls import reverse

from app.cats import files
from app.cats.photos import photo_path, validate_photo
from config.logging import request_id

# The oldest cat on record lived to 38.
MAX_AGE_YEARS = 40
# Sent once a row with a new photo is committed: cat_id, photo_name and the id of the request
# that stored it (app.cats.dispatch has its thumbnail made).
photo_stored = Signal()


class Cat(models.Model):
    name = models.CharField(max_length=100)
    breed = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True, max_length=5000)
    age = models.PositiveSmallIntegerField(
        help_text="Age in years.", validators=[MaxValueValidator(MAX_AGE_YEARS)]
    )
    photo = models.ImageField(upload_to=photo_path, validators=[validate_photo], blank=True)
    # Made from the photo after it is stored (app.cats.thumbnails); empty until then. Nullable,
    # so the release before it keeps writing rows while this one's migration runs.
    thumbnail = models.ImageField(upload_to=files.THUMBNAILS, null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        # Every list is read in this order, a page at a time (app.cats.pagination): without
        # the index each page sorts the whole table. Built CONCURRENTLY (migration 0002).
        indexes = (models.Index(fields=["-created_at", "-id"], name="cat_newest_first"),)

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        """Saves the row; its files follow it (app.cats.files): a photo this save replaced or
        cleared goes with its thumbnail once the row is committed, a new photo's file goes if
        the save fails, and a new photo's thumbnail is asked for once the row is committed."""
        previous = self._stored_photo()
        new_upload = bool(self.photo) and not self.photo._committed
        if new_upload or not self.photo:
            # Never a thumbnail of another photo, not even until the new one is made.
            self.thumbnail = None
        # One transaction (or, inside one, a mark for its rollback) for the row and what saving
        # it runs: when this raises, the row was not written and will not be.
        with files.kept_only_if_saved(self.photo), transaction.atomic(savepoint=False):
            super().save(*args, **kwargs)
        if previous and previous != self.photo.name:
            files.delete_on_commit(self.photo.storage, previous, files.thumbnail_name(previous))
        if new_upload:
            # The request's id now: the commit may come after the request's context is gone.
            stored = partial(photo_stored.send, sender=Cat, cat_id=self.pk,
                             photo_name=self.photo.name, request=request_id.get())  # fmt: skip
            transaction.on_commit(stored)

    def get_absolute_url(self) -> str:
        return reverse("cats:detail", args=[self.pk])

    def _stored_photo(self) -> str | None:
        """The photo the row holds in the database now (None for a new cat)."""
        if self.pk is None:
            return None
        return Cat.objects.filter(pk=self.pk).values_list("photo", flat=True).first()


@receiver(post_delete, sender=Cat)
def _delete_the_files_of_a_deleted_cat(sender, instance: Cat, using: str, **kwargs) -> None:
    """A deleted cat's photo and thumbnail go once the deletion commits, however the row went
    (the admin, a queryset, the shell): a rolled-back deletion keeps them."""
    for stored in (instance.photo, instance.thumbnail):
        if stored:
            files.delete_on_commit(stored.storage, stored.name, using=using)
