from django import forms

from app.cats.models import Cat


class CatForm(forms.ModelForm):
    class Meta:
        model = Cat
        fields = ("name", "breed", "age", "description", "photo")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Lets the browser's file picker offer only what the server will accept.
        self.fields["photo"].widget.attrs["accept"] = "image/jpeg,image/png,image/gif,image/webp"
