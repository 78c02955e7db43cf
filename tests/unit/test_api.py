"""The read-only JSON API."""

import pytest

from app.cats.models import Cat
from tests.unit.support import SITE_HOST

pytestmark = pytest.mark.django_db


@pytest.fixture
def cats():
    return [Cat.objects.create(name=f"cat {i}", age=i) for i in range(25)]


def test_list_shape_and_first_page(client, cats):
    response = client.get("/api/cats/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert {k: body[k] for k in ("count", "page", "page_size", "num_pages", "previous")} == {
        "count": 25,
        "page": 1,
        "page_size": 20,
        "num_pages": 2,
        "previous": None,
    }
    assert body["next"] == f"https://{SITE_HOST}/api/cats/?page=2&page_size=20"
    assert len(body["results"]) == 20
    assert body["results"][0]["name"] == "cat 24"


def test_last_page(client, cats):
    body = client.get("/api/cats/?page=2").json()
    assert [c["name"] for c in body["results"]] == [f"cat {i}" for i in range(4, -1, -1)]
    assert body["next"] is None
    assert body["previous"] == f"https://{SITE_HOST}/api/cats/?page=1&page_size=20"


def test_page_size_is_honoured_up_to_the_bound(client, cats):
    assert len(client.get("/api/cats/?page_size=5").json()["results"]) == 5
    assert len(client.get("/api/cats/?page_size=100").json()["results"]) == 25


def test_empty_collection_has_an_empty_first_page(client):
    body = client.get("/api/cats/").json()
    assert (body["count"], body["num_pages"], body["results"]) == (0, 1, [])


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=abc",
        "page=",
        "page=1.5",
        "page=99999999999999999999",
        "page=%D9%A3",  # an Arabic-Indic digit: isdigit() but not a page number
        "page_size=0",
        "page_size=101",
        "page_size=ten",
    ],
)
def test_bad_page_input_is_a_400(client, cats, query):
    response = client.get(f"/api/cats/?{query}")
    assert response.status_code == 400
    assert "must be a whole number" in response.json()["error"]


def test_a_page_past_the_end_is_a_404(client, cats):
    response = client.get("/api/cats/?page=3")
    assert response.status_code == 404
    assert response.json() == {"error": "page 3 does not exist; the last page is 2"}


def test_detail(client):
    cat = Cat.objects.create(name="Tom", breed="Tabby", age=3, description="Chases mice.")
    body = client.get(f"/api/cats/{cat.pk}/").json()
    assert body.pop("created_at").startswith(str(cat.created_at.year))
    assert body.pop("updated_at")
    assert body == {
        "id": cat.pk,
        "name": "Tom",
        "breed": "Tabby",
        "age": 3,
        "description": "Chases mice.",
        "photo_url": None,
        "thumbnail_url": None,
        "url": f"https://{SITE_HOST}/cats/{cat.pk}/",
    }


@pytest.mark.parametrize("pk", [1, 2**31, 2**63 + 1])
def test_missing_cat_is_a_json_404(client, pk):
    response = client.get(f"/api/cats/{pk}/")
    assert response.status_code == 404
    assert response.json() == {"error": f"no cat with id {pk}"}


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("path", ["/api/cats/", "/api/cats/1/"])
def test_the_api_is_read_only(client, method, path):
    Cat.objects.create(pk=1, name="Tom", age=3)
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert Cat.objects.get(pk=1).name == "Tom"


def test_head_is_allowed(client):
    assert client.head("/api/cats/").status_code == 200
