from typing import ClassVar

from django import forms

from app.cats.models import Cat


class CatForm(forms.ModelForm):
    class Meta:
        model = Cat
        fields = ("name", "breed", "age", "description", "photo")
        # Not forms.ImageField, which opens and verifies every upload with Pillow before the
        # model's validate_photo runs: outside its memory bound (app.cats.photos), with
        # Pillow's PNG verify() reading each chunk whole. validate_photo proves the image.
        field_classes: ClassVar = {"photo": forms.FileField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Lets the browser's file picker offer only what the server will accept.
        self.fields["photo"].widget.attrs["accept"] = "image/jpeg,image/png,image/gif,image/webp"
