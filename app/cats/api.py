"""Read-only JSON API: /api/cats/ (newest first, in pages) and /api/cats/<id>/.

A page links to the next (older) and previous (newer) pages by cursor (`after`, `before`):
there are no page numbers and no total count, so every page costs the same however many cats
there are (app.cats.pagination says why).
"""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from app.cats import pagination
from app.cats.models import Cat

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _positive_int(request: HttpRequest, name: str, default: int) -> int | None:
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        return None
    return int(raw)


def serialize(cat: Cat, request: HttpRequest) -> dict:
    return {
        "id": cat.pk,
        "name": cat.name,
        "breed": cat.breed,
        "age": cat.age,
        "description": cat.description,
        "photo_url": request.build_absolute_uri(cat.photo.url) if cat.photo else None,
        # Null until the thumbnail is made (app.cats.thumbnails).
        "thumbnail_url": request.build_absolute_uri(cat.thumbnail.url) if cat.thumbnail else None,
        "url": request.build_absolute_uri(cat.get_absolute_url()),
        "created_at": cat.created_at.isoformat(),
        "updated_at": cat.updated_at.isoformat(),
    }


# Exempt from CSRF only so that a POST gets its honest 405 rather than a 403: nothing here
# accepts a write.
@csrf_exempt
@require_safe
def cat_list(request: HttpRequest) -> JsonResponse:
    if "page" in request.GET:
        return _error(400, "page numbers are not supported; follow the next and previous links")
    page_size = _positive_int(request, "page_size", DEFAULT_PAGE_SIZE)
    if page_size is None or page_size > MAX_PAGE_SIZE:
        return _error(400, f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE}")
    after, before = request.GET.get("after", ""), request.GET.get("before", "")
    if after and before:
        return _error(400, "give after or before, not both")
    for name, cursor in (("after", after), ("before", before)):
        if cursor and pagination.parse_cursor(cursor) is None:
            return _error(400, f"{name} must be a cursor from a next or previous link")
    page = pagination.page(Cat.objects.all(), page_size, older_than=after, newer_than=before)

    def link(name: str, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        return request.build_absolute_uri(f"?{name}={cursor}&page_size={page_size}")

    return JsonResponse(
        {
            "page_size": page_size,
            "next": link("after", page.older),
            "previous": link("before", page.newer),
            "results": [serialize(cat, request) for cat in page.cats],
        }
    )


@csrf_exempt
@require_safe
def cat_detail(request: HttpRequest, pk: int) -> JsonResponse:
    cat = Cat.objects.filter(pk=pk).first()
    if cat is None:
        return _error(404, f"no cat with id {pk}")
    return JsonResponse(serialize(cat, request))
