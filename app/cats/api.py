"""Read-only JSON API: /api/cats/ (paginated) and /api/cats/<id>/."""

from django.core.paginator import Paginator
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

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
    page_number = _positive_int(request, "page", 1)
    if page_number is None:
        return _error(400, "page must be a whole number of at least 1")
    page_size = _positive_int(request, "page_size", DEFAULT_PAGE_SIZE)
    if page_size is None or page_size > MAX_PAGE_SIZE:
        return _error(400, f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE}")
    paginator = Paginator(Cat.objects.all(), page_size)
    if page_number > paginator.num_pages:
        return _error(
            404, f"page {page_number} does not exist; the last page is {paginator.num_pages}"
        )
    page = paginator.page(page_number)

    def link(number: int) -> str:
        return request.build_absolute_uri(f"?page={number}&page_size={page_size}")

    return JsonResponse(
        {
            "count": paginator.count,
            "page": page_number,
            "page_size": page_size,
            "num_pages": paginator.num_pages,
            "next": link(page.next_page_number()) if page.has_next() else None,
            "previous": link(page.previous_page_number()) if page.has_previous() else None,
            "results": [serialize(cat, request) for cat in page.object_list],
        }
    )


@csrf_exempt
@require_safe
def cat_detail(request: HttpRequest, pk: int) -> JsonResponse:
    cat = Cat.objects.filter(pk=pk).first()
    if cat is None:
        return _error(404, f"no cat with id {pk}")
    return JsonResponse(serialize(cat, request))
