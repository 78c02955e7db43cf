from django.contrib import admin

from app.cats.forms import CatForm
from app.cats.models import Cat


@admin.register(Cat)
class CatAdmin(admin.ModelAdmin):
    # The site's form: its photo field leaves the checking to validate_photo (forms.py).
    form = CatForm
    list_display = ("name", "breed", "age", "created_at")
    search_fields = ("name", "breed")
    readonly_fields = ("created_at", "updated_at")
