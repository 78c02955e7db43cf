"""The read-only JSON API."""

import re

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
    assert set(body) == {"page_size", "next", "previous", "results"}
    assert (body["page_size"], body["previous"]) == (20, None)
    assert re.fullmatch(
        rf"https://{SITE_HOST}/api/cats/\?after=[0-9]+\.{cats[5].pk}&page_size=20", body["next"]
    )
    assert len(body["results"]) == 20
    assert body["results"][0]["name"] == "cat 24"


def test_next_and_previous_links_walk_the_list_both_ways(client, cats):
    first = client.get("/api/cats/?page_size=10").json()
    second = client.get(first["next"]).json()
    last = client.get(second["next"]).json()
    assert [c["name"] for c in last["results"]] == [f"cat {i}" for i in range(4, -1, -1)]
    assert last["next"] is None
    back = client.get(last["previous"]).json()
    assert back["results"] == second["results"]
    assert client.get(back["previous"]).json()["results"] == first["results"]
    assert client.get(back["previous"]).json()["previous"] is None


def test_cats_created_in_the_same_microsecond_are_neither_lost_nor_repeated(client):
    Cat.objects.bulk_create([Cat(name=f"twin {i}", age=1) for i in range(7)])
    Cat.objects.update(created_at=Cat.objects.first().created_at)
    names, url = [], "/api/cats/?page_size=3"
    while url:
        body = client.get(url).json()
        names += [c["name"] for c in body["results"]]
        url = body["next"]
    assert sorted(names) == sorted(f"twin {i}" for i in range(7))


def test_page_size_is_honoured_up_to_the_bound(client, cats):
    assert len(client.get("/api/cats/?page_size=5").json()["results"]) == 5
    assert len(client.get("/api/cats/?page_size=100").json()["results"]) == 25


def test_empty_collection_has_an_empty_first_page(client):
    body = client.get("/api/cats/").json()
    assert (body["next"], body["previous"], body["results"]) == (None, None, [])


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("page_size=0", "must be a whole number"),
        ("page_size=101", "must be a whole number"),
        ("page_size=ten", "must be a whole number"),
        ("page_size=%D9%A3", "must be a whole number"),  # isdigit(), but not a number
        ("page=2", "page numbers are not supported"),
        ("page=0", "page numbers are not supported"),
        ("after=abc", "after must be a cursor"),
        ("after=1.2.3", "after must be a cursor"),
        ("before=999999999999999999.1", "before must be a cursor"),
        ("after=1.1&before=1.1", "not both"),
    ],
)
def test_bad_page_input_is_a_400(client, cats, query, error):
    response = client.get(f"/api/cats/?{query}")
    assert response.status_code == 400
    assert error in response.json()["error"]


def test_a_cursor_past_the_end_is_an_empty_page(client, cats):
    body = client.get("/api/cats/?after=1.1").json()
    assert (body["results"], body["next"]) == ([], None)


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
