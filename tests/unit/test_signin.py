"""Signing in: after DJANGO_LOGIN_FAILURE_LIMIT wrong passwords an account is refused to that
client (429, with a page that says why) without a password check, while the same account from
another address and another account from that address still sign in."""

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from tests.unit.support import SITE_HOST

PASSWORD = "a-long-admin-password-1234"  # noqa: S105 (a throwaway test user)


def client_at(address: str) -> Client:
    return Client(
        headers={"host": SITE_HOST, "x-forwarded-proto": "https", "x-forwarded-for": address}
    )


def sign_in(client: Client, username: str, password: str):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password})


@pytest.fixture
def users(db):
    model = get_user_model()
    for name in ("ops", "other"):
        model.objects.create_superuser(name, f"{name}@example.com", PASSWORD)


def test_an_account_is_refused_to_a_client_after_the_failure_limit(users):
    attacker = client_at("198.51.100.7")
    statuses = [
        sign_in(attacker, "ops", "wrong").status_code
        for _ in range(settings.AXES_FAILURE_LIMIT + 2)
    ]
    assert statuses[: settings.AXES_FAILURE_LIMIT - 1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert set(statuses[settings.AXES_FAILURE_LIMIT :]) == {429}
    refused = sign_in(attacker, "ops", PASSWORD)
    assert refused.status_code == 429
    assert b"Too many sign-in attempts" in refused.content
    # The pair is locked, not the account nor the address.
    assert sign_in(client_at("198.51.100.8"), "ops", PASSWORD).status_code == 302
    assert sign_in(attacker, "other", PASSWORD).status_code == 302


def test_a_sign_in_without_a_usable_next_lands_on_the_site(users):
    response = client_at("198.51.100.9").post(
        "/admin/login/?next=https://elsewhere.example/", {"username": "ops", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
