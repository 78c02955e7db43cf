"""The admin login in a real browser (Debian's Chromium through Playwright, no browser download):
over TLS at nginx with the secure defaults, and in the plain-HTTP trial setting."""

import os
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.stack.support import SUPERUSER, boot

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
BROWSER_TIMEOUT_MS = 30_000


def self_signed_certificate(folder: Path) -> Path:
    """tls.crt and tls.key for localhost, readable by nginx's UID 101."""
    folder.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(folder / "tls.key"), "-out", str(folder / "tls.crt"),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    for path in (folder, *folder.iterdir()):
        path.chmod(0o555 if path.is_dir() else 0o444)
    return folder


@pytest.fixture(params=["tls-at-nginx", "plain-http-trial"])
def site(request, compose_project, free_port, tmp_path):
    """(stack, base URL the browser uses)."""
    if request.param == "tls-at-nginx":
        https_port = free_port()
        stack = boot(
            compose_project,
            free_port(),
            files=("compose.yaml", "nginx/compose.tls.yaml"),
            env={
                "HTTPS_BIND": "127.0.0.1",
                "HTTPS_PORT": str(https_port),
                "NGINX_TLS_DIR": str(self_signed_certificate(tmp_path / "tls")),
            },
        )
        return stack, f"https://localhost:{https_port}"
    stack = boot(
        compose_project,
        free_port(),
        env={"DJANGO_SECURE_SSL_REDIRECT": "false", "DJANGO_SECURE_COOKIES": "false"},
    )
    return stack, f"http://localhost:{stack.port}"


def test_admin_login_in_a_real_browser(site):
    stack, base = site
    stack.project.compose(
        "exec", "-T", "--env", f"DJANGO_SUPERUSER_PASSWORD={SUPERUSER[1]}", "web",
        "python", "manage.py", "createsuperuser", "--noinput", "--username", SUPERUSER[0],
        "--email", "ops@example.com",
    )  # fmt: skip
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} missing: tests/harness/host-packages.txt"

    failed_responses, console = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            context = browser.new_context(ignore_https_errors=True)
            context.set_default_timeout(BROWSER_TIMEOUT_MS)
            page = context.new_page()
            page.on("console", lambda message: console.append((message.type, message.text)))
            page.on(
                "response",
                lambda response: (
                    failed_responses.append((response.status, response.url))
                    if response.status >= 400
                    else None
                ),
            )

            page.goto(f"{base}/admin/")
            assert page.url == f"{base}/admin/login/?next=/admin/"
            # The admin's stylesheets loaded and apply (served by nginx from the image).
            sheets = page.evaluate(
                "[...document.styleSheets].map(s => [s.href, s.cssRules.length])"
            )
            assert sheets
            assert all(href.startswith(f"{base}/static/") and rules for href, rules in sheets)
            header = page.evaluate("getComputedStyle(document.querySelector('#header')).display")
            assert header == "flex"

            page.fill("#id_username", SUPERUSER[0])
            page.fill("#id_password", SUPERUSER[1])
            page.click("input[type=submit]")
            page.wait_for_url(f"{base}/admin/")
            assert "Site administration" in page.title()

            # The public pages render under nginx's Content-Security-Policy too.
            page.goto(f"{base}/cats/new/")
            assert page.locator("form input[name=name]").count() == 1
            page.goto(f"{base}/")
        finally:
            browser.close()

    # Browsers ask for /favicon.ico on their own; the app has none.
    assert [r for r in failed_responses if not r[1].endswith("/favicon.ico")] == []
    assert [m for m in console if "Content Security Policy" in m[1] or "Refused" in m[1]] == []
