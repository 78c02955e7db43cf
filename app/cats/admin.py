from django.contrib import admin

from app.cats.models import Cat


@admin.register(Cat)
class CatAdmin(admin.ModelAdmin):
    list_display = ("name", "breed", "age", "created_at")
    search_fields = ("name", "breed")
    readonly_fields = ("created_at", "updated_at")
