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
        """Saves, then deletes the file of a photo this save replaced or cleared (and its
        thumbnail's), once the new row is committed: a failed or rolled-back save keeps the old
        photo and its file. A save that fails after storing a new photo's file removes that file
        (no row points at it). A new photo's thumbnail is asked for once the row is committed."""
        previous = None
        if self.pk is not None:
            previous = Cat.objects.filter(pk=self.pk).values_list("photo", flat=True).first()
        photo = self.photo
        uploaded = photo.name if photo and not photo._committed else None
        if uploaded is not None or not photo:
            # Never a thumbnail of another photo, not even until the new one is made.
            self.thumbnail = None
        try:
            # One transaction (or, inside one, a mark for its rollback) for the row and what
            # saving it runs: when this raises, the row was not written and will not be.
            with transaction.atomic(savepoint=False):
                super().save(*args, **kwargs)
        except BaseException:
            if uploaded is not None and photo._committed:
                files.delete(photo.storage, photo.name)
                # As before the save (which replaced the field with the stored name): a retry
                # stores the upload again.
                photo.name, photo._committed = uploaded, False
                self.photo = photo
            raise
        if previous and previous != self.photo.name:
            transaction.on_commit(partial(files.delete, self.photo.storage, previous))
            thumbnail = files.thumbnail_name(previous)
            transaction.on_commit(partial(files.delete, self.photo.storage, thumbnail))
        if uploaded is not None:
            # The request's id now: the commit may come after the request's context is gone.
            stored = partial(photo_stored.send, sender=Cat, cat_id=self.pk,
                             photo_name=self.photo.name, request=request_id.get())  # fmt: skip
            transaction.on_commit(stored)

    def get_absolute_url(self) -> str:
        return reverse("cats:detail", args=[self.pk])


@receiver(post_delete, sender=Cat)
def _delete_the_files_of_a_deleted_cat(sender, instance: Cat, using: str, **kwargs) -> None:
    """A deleted cat's photo and thumbnail go once the deletion commits, however the row went
    (the admin, a queryset, the shell): a rolled-back deletion keeps them."""
    for stored in (instance.photo, instance.thumbnail):
        if stored:
            transaction.on_commit(partial(files.delete, stored.storage, stored.name), using=using)
