"""Requests as nginx forwards them: CSRF, the HTTPS redirect, secure cookies and headers.

nginx always sets Host and X-Forwarded-Proto: "https" when the client spoke HTTPS to the load
balancer (or to nginx), "http" for a plain-HTTP trial. Same-origin form posts must pass in both
cases with no CSRF_TRUSTED_ORIGINS configured.
"""

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from app.cats.models import Cat
from tests.unit.support import SITE_HOST

FORM = "/cats/new/"


def browser(proto: str) -> Client:
    """A signed-in visitor (adding a cat needs one) whose requests arrive as nginx forwards them."""
    client = Client(
        enforce_csrf_checks=True, headers={"host": SITE_HOST, "x-forwarded-proto": proto}
    )
    client.force_login(User.objects.get_or_create(username="editor")[0])
    return client


def submit(client: Client, *, with_token: bool = True, **headers: str):
    """Load the form like a browser (getting the CSRF cookie and token), then post it."""
    page = client.get(FORM)
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    data = {"name": "Tom", "age": 3, **({"csrfmiddlewaretoken": token} if with_token else {})}
    return client.post(FORM, data, headers=headers)


@pytest.fixture
def plain_http_trial(settings):
    """DJANGO_SECURE_SSL_REDIRECT=false and DJANGO_SECURE_COOKIES=false, as docs/operations.md
    says."""
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False


@pytest.mark.django_db
def test_same_origin_post_passes_behind_an_https_load_balancer(settings):
    assert settings.CSRF_TRUSTED_ORIGINS == []
    response = submit(browser("https"), origin=f"https://{SITE_HOST}")
    assert response.status_code == 302
    assert Cat.objects.filter(name="Tom").exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("plain_http_trial")
def test_same_origin_post_passes_over_plain_http(settings):
    assert settings.CSRF_TRUSTED_ORIGINS == []
    response = submit(browser("http"), origin=f"http://{SITE_HOST}")
    assert response.status_code == 302
    assert Cat.objects.filter(name="Tom").exists()


@pytest.mark.django_db
def test_https_post_without_origin_passes_on_a_same_host_referer():
    response = submit(browser("https"), referer=f"https://{SITE_HOST}{FORM}")
    assert response.status_code == 302


@pytest.mark.django_db
@pytest.mark.usefixtures("plain_http_trial")
def test_https_origin_fails_when_the_proxy_reports_http():
    # What happens when a hop drops the load balancer's X-Forwarded-Proto: the scheme the
    # browser used and the one Django sees disagree, and the post is refused.
    response = submit(browser("http"), origin=f"https://{SITE_HOST}")
    assert response.status_code == 403
    assert not Cat.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"referer": "https://evil.example/form"},
        {"origin": f"https://{SITE_HOST}.evil.example"},
    ],
)
def test_cross_origin_post_is_refused(headers):
    assert submit(browser("https"), **headers).status_code == 403
    assert not Cat.objects.exists()


@pytest.mark.django_db
def test_post_without_token_is_refused():
    response = submit(browser("https"), with_token=False, origin=f"https://{SITE_HOST}")
    assert response.status_code == 403


@pytest.mark.django_db
def test_listed_trusted_origin_may_post(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://admin.example.com"]
    response = submit(browser("https"), origin="https://admin.example.com")
    assert response.status_code == 302


@pytest.mark.django_db
def test_plain_http_is_redirected_to_https_with_path_and_query():
    response = Client(headers={"host": SITE_HOST, "x-forwarded-proto": "http"}).get("/?page=2")
    assert response.status_code == 301
    assert response["Location"] == f"https://{SITE_HOST}/?page=2"


@pytest.mark.django_db
def test_forwarded_host_and_port_are_ignored():
    """Only nginx's Host counts; with X-Forwarded-Host honoured this would redirect elsewhere
    (or refuse the host)."""
    headers = {"x-forwarded-host": "evil.example", "x-forwarded-port": "8443"}
    client = Client(headers={"host": SITE_HOST, "x-forwarded-proto": "http", **headers})
    response = client.get("/?page=2")
    assert response.status_code == 301
    assert response["Location"] == f"https://{SITE_HOST}/?page=2"


@pytest.mark.django_db
def test_forwarded_proto_is_ignored_when_not_trusted(settings):
    settings.SECURE_PROXY_SSL_HEADER = None
    response = Client(headers={"host": SITE_HOST, "x-forwarded-proto": "https"}).get("/")
    assert response.status_code == 301


@pytest.mark.django_db
def test_https_responses_carry_security_headers_and_secure_cookies():
    response = browser("https").get(FORM)
    assert response["Strict-Transport-Security"] == "max-age=31536000"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response.cookies["csrftoken"]["secure"] is True


@pytest.mark.django_db
def test_unknown_host_is_refused():
    response = Client(headers={"host": "evil.example", "x-forwarded-proto": "https"}).get("/")
    assert response.status_code == 400
