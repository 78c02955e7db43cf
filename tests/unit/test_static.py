"""Static files: hashed names from {% static %}, served by whitenoise with immutable caching."""

import json

import pytest
from django.conf import settings


def hashed(name: str) -> str:
    manifest = json.loads((settings.STATIC_ROOT / "staticfiles.json").read_text())
    return manifest["paths"][name]


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.django_db
def test_pages_link_the_hashed_stylesheet(client):
    page = client.get("/")
    assert page.status_code == 200
    assert f'href="/static/{hashed("cats/style.css")}"' in page.content.decode()


def test_hashed_files_are_cached_forever(client):
    response = client.get(f"/static/{hashed('cats/style.css')}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert response["Cache-Control"] == "max-age=315360000, public, immutable"
    assert b"--accent" in body(response)


def test_unhashed_names_are_cached_briefly(client):
    response = client.get("/static/cats/style.css")
    assert response.status_code == 200
    assert "immutable" not in response["Cache-Control"]
    assert response["Cache-Control"] == "max-age=60, public"


def test_compressed_copy_is_served_to_clients_that_accept_it(client):
    response = client.get(
        f"/static/{hashed('cats/style.css')}", headers={"accept-encoding": "gzip"}
    )
    assert response["Content-Encoding"] == "gzip"
    assert response["Vary"] == "Accept-Encoding"
    assert body(response)[:2] == b"\x1f\x8b"


def test_admin_static_files_are_collected_and_served(client):
    response = client.get(f"/static/{hashed('admin/css/base.css')}")
    assert response.status_code == 200
