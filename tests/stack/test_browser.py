"""The admin login in a real browser (Debian's Chromium in a container, driven by Playwright):
over TLS at nginx with the secure defaults, and in the plain-HTTP trial setting. Adding a cat
sends the visitor to that login and back to the form: session and CSRF through the proxy."""

import pytest
from playwright.sync_api import sync_playwright

from tests.harness.browser import chromium
from tests.harness.tls import self_signed_certificate
from tests.stack.support import SUPERUSER, boot, png_bytes

BROWSER_TIMEOUT_MS = 30_000


@pytest.fixture(params=["tls-at-nginx", "plain-http-trial"])
def site(request, compose_project, free_port, tmp_path):
    """(stack, base URL the browser uses)."""
    if request.param == "tls-at-nginx":
        https_port = free_port()
        stack = boot(
            compose_project,
            free_port(),
            files=("compose.yaml", "compose.tls.yaml"),
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


def test_admin_login_in_a_real_browser(site, tmp_path, containers):
    stack, base = site
    stack.create_superuser()
    photo = tmp_path / "tabby.png"
    photo.write_bytes(png_bytes(color=(90, 60, 30)))

    failed_responses, failed_requests, console = [], [], []
    with chromium(containers, share=[tmp_path]) as endpoint, sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(endpoint)
        try:
            context = browser.new_context(ignore_https_errors=True)
            context.set_default_timeout(BROWSER_TIMEOUT_MS)
            page = context.new_page()
            page.on("console", lambda message: console.append((message.type, message.text)))
            page.on(
                "requestfailed",
                lambda request: failed_requests.append(
                    (request.method, request.url, request.failure)
                ),
            )
            page.on(
                "response",
                lambda response: (
                    failed_responses.append((response.status, response.url))
                    if response.status >= 400
                    else None
                ),
            )

            # Adding a cat takes a visitor to the login page first.
            page.goto(f"{base}/cats/new/")
            assert page.url == f"{base}/admin/login/?next=/cats/new/"
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
            # ... and back to the form, signed in; the site's pages render under nginx's
            # Content-Security-Policy too.
            page.wait_for_url(f"{base}/cats/new/")
            page.fill("input[name=name]", "Browser Tabby")
            page.fill("input[name=age]", "3")
            page.set_input_files("input[name=photo]", str(photo))
            page.click("form.cat-form button[type=submit]")
            page.wait_for_url(f"{base}/cats/*/")
            assert page.locator("p.message").inner_text() == "Browser Tabby was added."
            assert page.evaluate("document.querySelector('article.cat img').naturalWidth") > 0

            page.goto(f"{base}/admin/")
            assert "Site administration" in page.title()
            page.goto(f"{base}/")
        except Exception as error:
            # Playwright says only where the page ended up; the browser's own errors say why.
            raise AssertionError(
                f"{error}\nfailed requests: {failed_requests}\nconsole: {console}"
            ) from error
        finally:
            browser.close()

    # Browsers ask for /favicon.ico on their own; the app has none.
    assert [r for r in failed_responses if not r[1].endswith("/favicon.ico")] == []
    assert [m for m in console if "Content Security Policy" in m[1] or "Refused" in m[1]] == []
