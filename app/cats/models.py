from django.core.validators import MaxValueValidator
from django.db import models
from django.urls import reverse

from app.cats.photos import photo_path, validate_photo

# The oldest cat on record lived to 38.
MAX_AGE_YEARS = 40


class Cat(models.Model):
    name = models.CharField(max_length=100)
    breed = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True, max_length=5000)
    age = models.PositiveSmallIntegerField(
        help_text="Age in years.", validators=[MaxValueValidator(MAX_AGE_YEARS)]
    )
    photo = models.ImageField(upload_to=photo_path, validators=[validate_photo], blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("cats:detail", args=[self.pk])
