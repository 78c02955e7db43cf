"""TLS at nginx (compose.tls.yaml): Mozilla's intermediate profile, HSTS on every HTTPS answer
with Django's value, and the scheme Django sees: the connection's when the connection to nginx
is TLS, the trusted hop's claim only over plain HTTP.

The tests share one stack (conftest): they only read, or add a media file of their own."""

import socket
import ssl
import warnings
from collections.abc import Iterator

import pytest
import requests
import urllib3

from tests.harness.ports import free_port
from tests.harness.tls import self_signed_certificate as make_certificate
from tests.stack.support import (
    REQUEST_TIMEOUT_S,
    SITE_HOST,
    Stack,
    never_reached_web,
    running_stack,
)

# Not Django's defaults, so nginx can only match Django's header by reading the same settings.
HSTS_ENV = {"DJANGO_SECURE_HSTS_SECONDS": "600", "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "yes"}
HSTS = "max-age=600; includeSubDomains"
# Mozilla's intermediate TLS 1.2 suites that an RSA certificate (the tests', most load
# balancers') can use; the ECDSA ones need an ECDSA certificate.
INTERMEDIATE_RSA_SUITES = {
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
}
INTERMEDIATE_GROUPS = {"X25519MLKEM768", "X25519", "prime256v1", "secp384r1"}
ONE_DAY_S = 86_400
STATIC_FILE = "/static/admin/css/base.css"
NGINX_HTTPS_PORT = 8443


@pytest.fixture(scope="module")
def tls_stack(run_id, tmp_path_factory) -> Iterator[tuple[Stack, int]]:
    """(stack, the HTTPS port it publishes on 127.0.0.1)."""
    https_port = free_port()
    env = {
        "HTTPS_BIND": "127.0.0.1",
        "HTTPS_PORT": str(https_port),
        "NGINX_TLS_DIR": str(make_certificate(tmp_path_factory.mktemp("tls") / "certificate")),
        **HSTS_ENV,
    }
    with running_stack(
        f"{run_id}-tls",
        tmp_path_factory.mktemp("stack-env"),
        free_port(),
        env,
        ("compose.yaml", "compose.tls.yaml"),
    ) as stack:
        yield stack, https_port


def over_tls(port: int, path: str, **headers: str) -> requests.Response:
    with urllib3.warnings.catch_warnings():
        urllib3.warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        return requests.get(
            f"https://127.0.0.1:{port}{path}",
            headers={"Host": SITE_HOST, **headers},
            verify=False,  # noqa: S501 # the test's own self-signed certificate
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT_S,
        )


@pytest.mark.parametrize("claimed", [None, "http", "https", "HTTP"])
def test_a_tls_connection_is_https_whatever_a_trusted_hop_claims(tls_stack, claimed):
    """The tests' address is in the trusted ranges: believing its `X-Forwarded-Proto: http`
    over TLS would make Django redirect the request to HTTPS, forever."""
    _, https_port = tls_stack
    headers = {"X-Forwarded-Proto": claimed} if claimed else {}
    response = over_tls(https_port, "/", **headers)
    assert response.status_code == 200, response.headers.get("Location")
    # Django sends HSTS on requests it considers secure only.
    assert response.headers["Strict-Transport-Security"] == HSTS


def test_plain_http_believes_the_trusted_hop(tls_stack):
    stack, _ = tls_stack
    redirected = stack.get("/", https=False, headers={"X-Forwarded-Proto": "http"})
    assert (redirected.status_code, redirected.headers["Location"]) == (301, "https://localhost/")
    assert stack.get("/", headers={"X-Forwarded-Proto": "https"}).status_code == 200


# --- The TLS profile ---------------------------------------------------------------------------


def client_context(
    ciphers: str = "DEFAULT", version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """A client that offers exactly `ciphers` (TLS 1.2 and older) over `version` only.
    Security level 0: the client's own OpenSSL would otherwise refuse to offer TLS 1.0 and
    1.1 and weak suites at all, and the test would see the client's refusal, not nginx's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    if version is not None:
        with warnings.catch_warnings():
            # Python deprecates TLS 1.0 and 1.1: offering them is the point here.
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = version
    return context


def handshake(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    """A completed TLS handshake with nginx (close it), or ssl.SSLError."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT_S)
    try:
        return context.wrap_socket(raw, server_hostname=SITE_HOST)
    except BaseException:
        raw.close()
        raise


def refused_by_nginx(port: int, context: ssl.SSLContext) -> str:
    """The alert nginx answered the handshake with (fails if the handshake succeeded, or
    if the client gave up on its own, without an alert from nginx)."""
    with pytest.raises(ssl.SSLError) as refusal:
        handshake(port, context).close()
    assert "ALERT" in refusal.value.reason, refusal.value
    return refusal.value.reason


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLSv1.0", "TLSv1.1"]
)
def test_tls_before_1_2_is_refused(tls_stack, version):
    _, https_port = tls_stack
    assert "PROTOCOL_VERSION" in refused_by_nginx(https_port, client_context(version=version))


@pytest.mark.parametrize(
    "suite",
    [
        "AES128-GCM-SHA256",  # static RSA key exchange: no forward secrecy
        "AES256-SHA256",  # static RSA, CBC
        "ECDHE-RSA-AES128-SHA256",  # CBC (LUCKY13)
        "ECDHE-RSA-AES256-SHA",  # CBC with SHA-1
    ],
)
def test_tls_1_2_suites_without_forward_secrecy_or_with_cbc_are_refused(tls_stack, suite):
    _, https_port = tls_stack
    refused_by_nginx(https_port, client_context(suite, ssl.TLSVersion.TLSv1_2))


def test_tls_1_2_accepts_exactly_the_profiles_suites(tls_stack):
    """Every TLS 1.2 suite this client knows, offered alone: what testssl.sh does."""
    _, https_port = tls_stack
    known = {
        cipher["name"]
        for cipher in client_context("ALL").get_ciphers()
        if cipher["protocol"] != "TLSv1.3"
    }
    assert {"AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA"} | INTERMEDIATE_RSA_SUITES <= known
    accepted = {}
    for suite in sorted(known):
        try:
            with handshake(https_port, client_context(suite, ssl.TLSVersion.TLSv1_2)) as tls:
                accepted[suite] = tls.cipher()[0]
        except ssl.SSLError:
            continue
    assert accepted == {suite: suite for suite in INTERMEDIATE_RSA_SUITES}


def test_tls_1_3_and_ecdhe_gcm_are_accepted(tls_stack):
    _, https_port = tls_stack
    context = client_context("ECDHE-RSA-AES128-GCM-SHA256", ssl.TLSVersion.TLSv1_2)
    with handshake(https_port, context) as tls:
        assert (tls.version(), tls.cipher()[0]) == ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
    with handshake(https_port, client_context(version=ssl.TLSVersion.TLSv1_3)) as tls:
        assert tls.version() == "TLSv1.3"


def test_sessions_resume_for_a_day(tls_stack):
    """The session cache and timeout of the profile: a returning client skips the full
    handshake, for a day (TLS 1.3 tells the client how long in its session ticket)."""
    _, https_port = tls_stack
    context = client_context(version=ssl.TLSVersion.TLSv1_3)
    with handshake(https_port, context) as tls:
        tls.sendall(f"GET /nginx-healthz HTTP/1.1\r\nHost: {SITE_HOST}\r\n\r\n".encode())
        assert tls.recv(4096).startswith(b"HTTP/1.1 200")  # the session ticket comes with it
        session = tls.session
    assert session.ticket_lifetime_hint == ONE_DAY_S
    raw = socket.create_connection(("127.0.0.1", https_port), timeout=REQUEST_TIMEOUT_S)
    with context.wrap_socket(raw, server_hostname=SITE_HOST, session=session) as resumed:
        assert resumed.session_reused


def test_key_exchange_groups_are_the_profiles(tls_stack):
    """The curve list nginx was given works with the OpenSSL it runs (the post-quantum hybrid
    needs 3.5), and nothing outside it is agreed. openssl in nginx's own image knows every
    group; this host's Python may not."""
    stack, _ = tls_stack
    groups = sorted(INTERMEDIATE_GROUPS | {"secp521r1", "X448", "ffdhe2048"})
    script = (
        'for group; do if openssl s_client -connect "127.0.0.1:$0" -groups "$group" '
        '</dev/null >/dev/null 2>&1; then echo "$group"; fi; done'
    )
    output = stack.exec("nginx", "sh", "-c", script, str(NGINX_HTTPS_PORT), *groups)
    assert set(output.split()) == INTERMEDIATE_GROUPS


# --- HSTS --------------------------------------------------------------------------------------


def media_file(stack: Stack) -> str:
    """A file in the media volume, written by web's user as uploads are; nginx serves it."""
    stack.exec("web", "sh", "-c", "printf 'a photo' > /srv/media/hsts-probe.png")
    return "/media/hsts-probe.png"


def test_hsts_on_everything_nginx_serves_over_tls_with_djangos_value(tls_stack):
    stack, https_port = tls_stack
    media = media_file(stack)
    page = over_tls(https_port, "/")
    assert page.headers["Strict-Transport-Security"] == HSTS  # Django's, sent once
    for path, status in ((STATIC_FILE, 200), (media, 200), ("/static/no-such-file.css", 404)):
        response = over_tls(https_port, path)
        assert response.status_code == status, path
        assert response.headers.get("Strict-Transport-Security") == HSTS, path


def test_hsts_only_over_https(tls_stack):
    """Over plain HTTP only when the trusted hop says the client's connection was HTTPS (TLS
    at the load balancer); never on a plain-HTTP answer, which browsers would ignore."""
    stack, _ = tls_stack
    media = media_file(stack)
    for path in (STATIC_FILE, media):
        plain = stack.get(path, https=False)
        assert plain.status_code == 200, path
        assert "Strict-Transport-Security" not in plain.headers, path
        spoofed_http = stack.get(path, https=False, headers={"X-Forwarded-Proto": "http"})
        assert "Strict-Transport-Security" not in spoofed_http.headers, path
        behind_tls = stack.get(path)  # X-Forwarded-Proto: https, from a trusted hop
        assert behind_tls.headers["Strict-Transport-Security"] == HSTS, path


# --- Request limits over HTTP/2 ----------------------------------------------------------------


def http2(stack: Stack, path: str, *headers: str) -> tuple[int, dict[str, str], str]:
    """GET over HTTP/2 with curl in the nginx container (the tests' Python speaks only
    HTTP/1.1): (status, response headers, body)."""
    header_args = [arg for header in (f"Host: {SITE_HOST}", *headers) for arg in ("-H", header)]
    output = stack.exec(
        "nginx", "curl", "--silent", "--insecure", "--http2", "--include", *header_args,
        f"https://127.0.0.1:{NGINX_HTTPS_PORT}{path}",
    )  # fmt: skip
    # (Text output: the CRLFs arrive as newlines.)
    head, _, body = output.partition("\n\n")
    status_line, *lines = head.splitlines()
    assert status_line.startswith("HTTP/2 "), status_line
    fields = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in fields.items()}, body


def test_http2_request_lines_are_bounded_like_http1s(tls_stack):
    """HTTP/2 limits a field by its compressed size: a 10,000-byte path (Huffman-coded in
    about 6 KB) passes nginx's 8k field limit, but would give gunicorn a line over the 8190
    bytes it reads at most. nginx refuses it itself, as it would over HTTP/1.1."""
    stack, _ = tls_stack
    status, headers, body = http2(stack, "/api/cats/?q=" + "a" * 10_000)
    assert status == 414
    assert "Request Line is too large" not in body  # gunicorn's page
    [line] = stack.nginx_lines(lambda r: r["request_id"] == headers["x-request-id"])
    assert line["status"] == 414
    assert never_reached_web(line)
    # Just under gunicorn's limit: the app answers.
    path = "/api/cats/?q=" + "a" * (8190 - len("GET /api/cats/?q= HTTP/1.1"))
    assert http2(stack, path)[0] == 200


def test_http2_header_lines_nginx_takes_reach_the_app(tls_stack):
    """A 12,000-byte header (about 7.5 KB compressed) passes nginx over HTTP/2, and so does a
    cookie sent in many fields, which nginx joins into one Cookie line for gunicorn."""
    stack, _ = tls_stack
    status, headers, _ = http2(stack, "/api/cats/", "X-Long: " + "a" * 12_000)
    assert status == 200
    [line] = stack.json_lines(
        "web", lambda r: r.get("request_id") == headers["x-request-id"] and "status" in r
    )
    assert line["status"] == 200
    crumbs = [f"Cookie: c{i}={'a' * 4000}" for i in range(6)]
    assert http2(stack, "/api/cats/", *crumbs)[0] == 200
