"""A fresh stack from the exact compose.yaml, used through nginx as the load balancer uses it.

The tests here share one stack (conftest: they only read, or add cats under their own names)."""

import gzip
import json
import re
import socket
import uuid

from tests.harness.docker import docker
from tests.harness.measurements import record
from tests.harness.polling import wait_until
from tests.stack.support import (
    APP_ROLE_FACTS,
    HASHED_STATIC,
    ROLE_FACTS,
    SUPERUSER,
    UP_BOUND_S,
    dropped,
    never_reached_web,
    noise_png,
    png_bytes,
    python_in_web,
)

# A stack set up for production: its hosts named (docs/operations.md, Quickstart), so a
# request for another host is dropped without an answer.
STACK_ENV = {"DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1"}


def test_fresh_up_reaches_healthy_with_migrations_applied(shared_stack):
    record("fresh up --wait to healthy", {"seconds": round(shared_stack.up_seconds, 1)})
    assert shared_stack.up_seconds < UP_BOUND_S
    states = {
        c["Service"]: (c["State"], c["Health"], c["ExitCode"]) for c in shared_stack.project.ps()
    }
    assert states == {
        "init-secrets": ("exited", "", 0),
        "publish": ("exited", "", 0),
        "db": ("running", "healthy", 0),
        "db-roles": ("exited", "", 0),
        "web": ("running", "healthy", 0),
        "nginx": ("running", "healthy", 0),
        "photos-backup": ("running", "healthy", 0),
    }
    shared_stack.exec("web", "python", "manage.py", "migrate", "--check")
    ready = shared_stack.get("/readyz", host="10.20.30.40", https=False)
    assert ready.status_code == 200, ready.text
    # The new cluster's stanza was made during its initialisation (postgres/initdb-stanza.sh):
    # its first segments were archived at the first attempt.
    db_logs = shared_stack.logs("db")
    assert "initdb-stanza.sh" in db_logs
    assert "archive command failed" not in db_logs
    assert "initdb-stanza: no stanza yet" not in db_logs


def test_home_page_over_https_at_the_load_balancer(shared_stack):
    response = shared_stack.get("/")
    assert response.status_code == 200
    assert "<title>Cat collector</title>" in response.text


def test_plain_http_is_redirected_to_https_but_the_probes_are_not(shared_stack):
    response = shared_stack.get("/cats/new/", https=False)
    assert response.status_code == 301
    assert response.headers["Location"] == "https://localhost/cats/new/"
    for path in ("/healthz", "/readyz"):
        assert shared_stack.get(path, https=False).status_code == 200


def test_probes_answer_for_any_host(shared_stack):
    for host in ("10.0.3.7", "203.0.113.9", "lb-probe.internal"):
        healthz = shared_stack.get("/healthz", host=host, https=False)
        assert healthz.status_code == 200
        assert healthz.json() == {"status": "ok"}
        assert shared_stack.get("/readyz", host=host, https=False).status_code == 200
        own = shared_stack.get("/nginx-healthz", host=host, https=False)
        assert (own.status_code, own.text) == (200, "ok\n")


def test_unknown_host_is_dropped_before_python(shared_stack):
    marker = f"/unknown-host-{uuid.uuid4().hex}/"
    for path in (marker, "/", "/admin/login/", "/api/cats/", "/static/admin/css/base.css"):
        assert dropped(shared_stack, path, host="attacker.example"), path
    [line] = shared_stack.nginx_lines(lambda r: r["path"] == marker)
    assert line["status"] == 444
    assert never_reached_web(line)


def test_json_api(shared_stack):
    client = shared_stack.signed_in_client()
    name = f"API cat {uuid.uuid4().hex[:8]}"
    detail_path = client.create_cat(name)
    cat_id = int(re.fullmatch(r"/cats/(\d+)/", detail_path).group(1))

    listing = client.get("/api/cats/?page_size=100")
    assert listing.status_code == 200
    assert listing.headers["Content-Type"] == "application/json"
    cats = {cat["id"]: cat for cat in listing.json()["results"]}
    assert cats[cat_id]["name"] == name
    # Absolute URLs carry the scheme and host the visitor used at the load balancer.
    assert cats[cat_id]["url"] == f"https://localhost/cats/{cat_id}/"

    detail = client.get(f"/api/cats/{cat_id}/")
    assert (detail.status_code, detail.json()["name"]) == (200, name)
    assert client.get("/api/cats/?page=0").status_code == 400


def test_photo_upload_is_served_from_media_by_nginx(shared_stack):
    client = shared_stack.signed_in_client()
    photo = png_bytes(color=(10, 200, 30))
    page = client.get(client.create_cat("Photogenic", photo))
    photo_url = re.search(r'<img src="(/media/cats/[0-9a-f-]+\.png)"', page.text).group(1)

    served = client.get(photo_url)
    assert served.status_code == 200
    assert served.content == photo
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    policy = served.headers["Content-Security-Policy"]
    assert "sandbox" in policy
    # A photo cannot be framed by another site (clickjacking with an uploaded image).
    assert "frame-ancestors 'none'" in policy
    assert "Content-Disposition" not in served.headers
    assert served.headers["Cache-Control"] == "max-age=86400, public"
    request_id = served.headers["X-Request-ID"]
    [line] = shared_stack.nginx_lines(lambda r: r["request_id"] == request_id)
    assert (line["path"], line["status"]) == (photo_url, 200)
    assert never_reached_web(line)


def test_media_serves_non_images_as_downloads_and_ignores_symlinks(shared_stack):
    shared_stack.exec(
        "web", "sh", "-c",
        "echo '<script>alert(1)</script>' > /srv/media/page.html && "
        "ln -sf /etc/nginx/nginx.conf /srv/media/config.png",
    )  # fmt: skip
    page = shared_stack.get("/media/page.html")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "application/octet-stream"
    assert page.headers["Content-Disposition"] == "attachment"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert shared_stack.get("/media/config.png").status_code == 403
    assert shared_stack.client().request("POST", "/media/page.html").status_code == 403


def test_upload_limit_defaults_agree(shared_stack):
    """compose passes UPLOAD_MAX_MB only when .env sets it: unset, Django's default and
    nginx's must be the same number."""
    assert "UPLOAD_MAX_MB" not in shared_stack.env
    django_mb = int(
        python_in_web(
            shared_stack, "from django.conf import settings; print(settings.UPLOAD_MAX_MB)"
        )
    )
    nginx = shared_stack.exec("nginx", "nginx", "-T")
    nginx_mb = int(re.search(r"client_max_body_size (\d+)m;", nginx).group(1))
    assert nginx_mb == django_mb + 1


def test_upload_limits_agree_with_django(shared_stack):
    """UPLOAD_MAX_MB (10) is Django's photo limit; nginx allows a little more, so a photo just
    over the limit gets Django's form error, and only far bigger bodies nginx's 413."""
    client = shared_stack.signed_in_client()
    client.get("/cats/new/")
    just_over = noise_png(1890)
    assert 10 * 1024 * 1024 < len(just_over) < 11 * 1024 * 1024
    response = client.post_form(
        "/cats/new/",
        {"name": "Big", "age": "2"},
        files={"photo": ("big.png", just_over, "image/png")},
    )
    assert response.status_code == 200
    assert "the limit is 10 MB" in response.text

    far_over = b"\0" * (12 * 1024 * 1024)
    response = client.post_form(
        "/cats/new/",
        {"name": "Huge", "age": "2"},
        files={"photo": ("huge.png", far_over, "image/png")},
    )
    assert response.status_code == 413
    request_id = response.headers["X-Request-ID"]
    [line] = shared_stack.nginx_lines(lambda r: r["request_id"] == request_id)
    assert (line["method"], line["status"]) == ("POST", 413)
    assert never_reached_web(line)


def test_security_headers(shared_stack):
    page = shared_stack.get("/")
    headers = page.headers
    assert headers["Server"] == "nginx"
    # Django's own, once each: nginx adds a header only where the app set none.
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    # nginx's additions.
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "camera=()" in headers["Permissions-Policy"]
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])
    for name in ("X-Content-Type-Options", "Referrer-Policy", "Content-Security-Policy"):
        assert "," not in headers[name], f"{name} sent twice: {headers[name]}"

    error = shared_stack.get("/static/no-such-file.css")
    assert error.status_code == 404
    assert error.headers["Server"] == "nginx"
    assert "1.30" not in error.text

    # What nginx serves itself carries Django's HSTS (the same defaults), over HTTPS only.
    for path in ("/static/admin/css/base.css", "/static/no-such-file.css"):
        hsts = shared_stack.get(path).headers.get("Strict-Transport-Security")
        assert hsts == headers["Strict-Transport-Security"], path
        assert "Strict-Transport-Security" not in shared_stack.get(path, https=False).headers


def test_static_files_compressed_and_cached_by_nginx(shared_stack):
    login = shared_stack.get("/admin/login/")
    hashed = sorted(set(HASHED_STATIC.findall(login.text)))
    assert hashed, login.text
    path = next(p for p in hashed if p.endswith(".css"))

    plain = shared_stack.get(path, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert plain.headers["Cache-Control"] == "max-age=315360000, public, immutable"
    assert plain.headers["X-Content-Type-Options"] == "nosniff"

    compressed = shared_stack.get(path, headers={"Accept-Encoding": "gzip"}, stream=True)
    assert compressed.headers["Content-Encoding"] == "gzip"
    assert compressed.headers["Vary"] == "Accept-Encoding"
    body = compressed.raw.read()
    assert int(compressed.headers["Content-Length"]) == len(body) < len(plain.content)
    assert gzip.decompress(body) == plain.content

    # The very bytes the running web image collected, not a copy that can go stale.
    in_web_image = shared_stack.exec("web", "cat", "/srv" + path)
    assert in_web_image == plain.text

    unhashed = shared_stack.get("/static/admin/css/base.css")
    assert unhashed.headers["Cache-Control"] == "max-age=60, public"
    # nginx does not log static files; a request web logs after these marks how far its log
    # has come: had web served the files, their lines would be above that one.
    barrier = f"barrier-{uuid.uuid4().hex}"
    assert shared_stack.get("/api/cats/", headers={"X-Request-ID": barrier}).status_code == 200
    wait_until(lambda: barrier in shared_stack.logs("web"), 15, what="web's log up to date")
    assert path not in shared_stack.logs("web")
    assert "/static/admin/css/base.css" not in shared_stack.logs("web")


def test_admin_login_with_its_css(shared_stack):
    client = shared_stack.client()
    form = client.get("/admin/login/")
    assert form.status_code == 200
    for stylesheet in re.findall(r'<link rel="stylesheet" href="([^"]+)"', form.text):
        css = client.get(stylesheet)
        assert (css.status_code, css.headers["Content-Type"]) == (200, "text/css"), stylesheet

    login = client.post_form(
        "/admin/login/?next=/admin/",
        {"username": SUPERUSER[0], "password": SUPERUSER[1], "next": "/admin/"},
    )
    assert login.status_code == 302, login.text[:2000]
    assert login.headers["Location"] == "/admin/"
    # Session and CSRF cookies are Secure: the visitor is on HTTPS at the load balancer.
    assert "Secure" in login.headers["Set-Cookie"]
    admin = client.get("/admin/")
    assert admin.status_code == 200
    assert "Site administration" in admin.text


def test_request_ids_generated_or_kept_from_the_load_balancer(shared_stack):
    generated = shared_stack.get("/api/cats/")
    request_id = generated.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)

    from_balancer = f"lb-{uuid.uuid4().hex}"
    kept = shared_stack.get("/api/cats/", headers={"X-Request-ID": from_balancer})
    assert kept.headers["X-Request-ID"] == from_balancer

    unsafe = shared_stack.get("/api/cats/", headers={"X-Request-ID": "bad id\tinjected"})
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["X-Request-ID"])

    for value in (request_id, from_balancer):
        assert len(shared_stack.nginx_lines(lambda r, v=value: r["request_id"] == v)) == 1
        shared_stack.json_lines(
            "web", lambda r, v=value: r.get("request_id") == v and r["logger"] == "gunicorn.access"
        )


def test_access_logs_are_json_with_the_client_address(shared_stack):
    client_address = "198.51.100.23"
    marker = f"/api/cats/?marker={uuid.uuid4().hex}"
    response = shared_stack.get(marker, headers={"X-Forwarded-For": client_address})
    request_id = response.headers["X-Request-ID"]
    [line] = shared_stack.nginx_lines(lambda r: r["request_id"] == request_id)
    assert {
        "time", "level", "logger", "message", "request_id", "method", "path", "status",
        "duration_ms", "remote_addr", "bytes",
    } <= set(line)  # fmt: skip
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/cats/", 200)
    assert line["remote_addr"] == client_address
    assert line["peer"] == shared_stack.gateway_address()
    assert isinstance(line["duration_ms"], int)
    [web_line] = shared_stack.json_lines(
        "web", lambda r: r.get("request_id") == request_id and r["logger"] == "gunicorn.access"
    )
    assert web_line["remote_addr"] == client_address


def test_secrets_generated_into_the_volume_web_sees_only_its_own(shared_stack):
    assert "django_secret_key generated" in shared_stack.logs("init-secrets")
    # The volume as db sees it (the whole of it): the app group may read, nothing else.
    listing = shared_stack.exec(
        "db", "stat", "-c", "%n %a %u %g", "/run/secrets/catcollector",
        "/run/secrets/catcollector/postgres_password",
    ).split("\n")  # fmt: skip
    assert listing[:2] == [
        "/run/secrets/catcollector 750 0 10001",
        "/run/secrets/catcollector/postgres_password 440 0 10001",
    ]
    # web: its key and its role's password, never the superuser's or the backup key.
    secrets = "/run/secrets/catcollector"
    assert shared_stack.exec("web", "ls", secrets).split() == [
        "django_secret_key", "postgres_app_password",
    ]  # fmt: skip
    listing = shared_stack.exec(
        "web", "stat", "-c", "%n %a %u %g",
        f"{secrets}/django_secret_key", f"{secrets}/postgres_app_password",
    ).split("\n")  # fmt: skip
    assert listing[:2] == [
        f"{secrets}/django_secret_key 440 0 10001",
        f"{secrets}/postgres_app_password 440 0 10001",
    ]
    key = shared_stack.exec("web", "cat", f"{secrets}/django_secret_key")
    assert re.fullmatch(r"[A-Za-z0-9_-]{64}", key)


def test_web_uses_a_role_without_superuser_that_owns_the_database(shared_stack):
    """web's role may do what the app does and no more: no superuser, no new roles or
    databases; it owns the database and every table and sequence. db-roles brings a database
    back in line at every up: here a table the superuser made and a password from elsewhere,
    as a stack from before the role or another VM's restored database has them."""
    facts = python_in_web(shared_stack, ROLE_FACTS)
    assert facts == APP_ROLE_FACTS
    superuser = ["psql", "--username=catcollector", "--dbname=catcollector", "--command"]
    shared_stack.exec("db", *superuser, "CREATE TABLE left_by_the_superuser (id int)")
    shared_stack.exec("db", *superuser, "ALTER ROLE catcollector_app PASSWORD 'elsewhere'")
    try:
        brought = shared_stack.project.run("db-roles")
        assert brought.stdout.strip().splitlines()[-1] == (
            "app-role: catcollector_app owns catcollector, without superuser"
        )
        facts = python_in_web(shared_stack, ROLE_FACTS)
        assert facts == APP_ROLE_FACTS
    finally:
        shared_stack.exec("db", *superuser, "DROP TABLE IF EXISTS left_by_the_superuser")
    assert shared_stack.get("/readyz", https=False).status_code == 200


def test_relations_between_timeouts_hold(shared_stack):
    """Each timeout is defined once; these relations between them must hold."""
    gunicorn = json.loads(
        shared_stack.exec(
            "web", "python", "-c",
            "import json, config.gunicorn as g; print(json.dumps({"
            "'keepalive': g.keepalive, 'graceful_timeout': g.graceful_timeout, "
            "'timeout': g.timeout}))",
        ).strip().splitlines()[-1]
    )  # fmt: skip
    nginx = shared_stack.exec("nginx", "nginx", "-T")
    upstream = re.search(r"upstream web \{(.*?)\}", nginx, re.DOTALL).group(1)
    upstream_idle = int(re.search(r"keepalive_timeout (\d+)s;", upstream).group(1))
    read_timeout = int(re.search(r"^proxy_read_timeout (\d+)s;", nginx, re.MULTILINE).group(1))
    shutdown = int(re.search(r"worker_shutdown_timeout (\d+)s;", nginx).group(1))

    # nginx closes idle upstream connections before gunicorn does, never the other way round.
    assert gunicorn["keepalive"] > upstream_idle
    # gunicorn kills a stuck request before nginx stops waiting for it.
    assert read_timeout > gunicorn["timeout"]
    # Requests in flight finish before Docker kills the container.
    assert shared_stack.inspect("web")["Config"]["StopTimeout"] > gunicorn["graceful_timeout"]
    assert shared_stack.inspect("nginx")["Config"]["StopTimeout"] > shutdown


# What gunicorn does with its limit_* settings (gunicorn/http/message.py): a request line limit
# of 0 means none and is otherwise capped at 8190; a field size of 0 means 8190; a field count
# of 0, or over 32768, means 32768.
GUNICORN_EFFECTIVE_LIMITS = """
import json, math, config.gunicorn as module
from gunicorn.config import Config
from gunicorn.http import message
config = Config()
for name in ("limit_request_line", "limit_request_field_size", "limit_request_fields"):
    if hasattr(module, name):
        config.set(name, getattr(module, name))
line = config.limit_request_line
size = config.limit_request_field_size
fields = config.limit_request_fields
print(json.dumps({
    "line": min(line, message.MAX_REQUEST_LINE) if line else math.inf,
    "field_size": size if size > 0 else message.DEFAULT_MAX_HEADERFIELD_SIZE,
    "fields": fields if 0 < fields <= message.MAX_HEADERS else message.MAX_HEADERS,
}))
"""


def test_gunicorn_takes_every_request_nginx_passes_on(shared_stack):
    """nginx's request limits are the stack's, and gunicorn's follow them (config/gunicorn.py):
    a request nginx lets through must never get gunicorn's own error page. Read from what runs."""
    output = shared_stack.exec("web", "python", "-c", GUNICORN_EFFECTIVE_LIMITS)
    gunicorn = json.loads(output.strip().splitlines()[-1])
    nginx = shared_stack.exec("nginx", "nginx", "-T")
    count, size_k = re.search(r"^large_client_header_buffers (\d+) (\d+)k;", nginx, re.M).groups()
    buffer, whole_head = int(size_k) * 1024, int(count) * int(size_k) * 1024
    # The longest line nginx reads over HTTP/1.1 (a buffer less CRLF) reaches gunicorn as is.
    assert gunicorn["line"] >= buffer - 2
    # Longer ones (HTTP/2's can be) nginx refuses itself.
    refused_from = re.search(
        r'map "\$request_method \$request_uri HTTP/1.1" .*?"~\^\.\{(\d+)\}" 1;', nginx, re.S
    )
    assert gunicorn["line"] >= int(refused_from.group(1)) - 1
    # One header line ("Name: value" and CRLF): over HTTP/2, nginx joins cookies into one,
    # which may fill the whole head.
    assert gunicorn["field_size"] >= whole_head + len(": \r\n")
    # The client's header lines, plus nginx's own (proxy_set_header) and Content-Length.
    max_headers = int(re.search(r"^max_headers (\d+);", nginx, re.M).group(1))
    added = [
        name
        for name, value in re.findall(r"^proxy_set_header (\S+) (.+);$", nginx, re.M)
        if value != '""'
    ]
    assert "X-Request-ID" in added
    assert gunicorn["fields"] >= max_headers + len(added) + 1


def test_containers_are_locked_down(shared_stack):
    services = {
        "init-secrets": {"CHOWN"},
        "db": {"CHOWN", "DAC_READ_SEARCH", "SETGID", "SETUID"},
        "db-roles": set(),
        "web": set(),
        "nginx": set(),
        # Root with no capability: it reads the photos (world-readable) and its own volume.
        "photos-backup": set(),
    }
    for service, capabilities in services.items():
        host = shared_stack.inspect(service)["HostConfig"]
        assert host["ReadonlyRootfs"], service
        assert host["CapDrop"] == ["ALL"], service
        assert {c.removeprefix("CAP_") for c in host["CapAdd"] or []} == capabilities, service
        assert "no-new-privileges:true" in host["SecurityOpt"], service
        assert host["Memory"] > 0, service
        assert host["PidsLimit"] > 0, service
        assert host["LogConfig"]["Type"] == "json-file", service
        assert {"max-size", "max-file"} <= set(host["LogConfig"]["Config"]), service
        expected_restart = "no" if service in ("init-secrets", "db-roles") else "unless-stopped"
        assert host["RestartPolicy"]["Name"] == expected_restart, service
        published = {p: b for p, b in (host["PortBindings"] or {}).items() if b}
        if service == "nginx":
            loopback = {"HostIp": "127.0.0.1", "HostPort": str(shared_stack.port)}
            assert published == {"8080/tcp": [loopback]}
        else:
            assert published == {}, service

    assert shared_stack.inspect("nginx")["Config"]["User"] == "101:101"
    assert shared_stack.exec("web", "id", "-u").strip() == "10001"
    worker_uids = shared_stack.exec(
        "nginx", "sh", "-c", "for s in /proc/[0-9]*/status; do awk '/^Uid:/ {print $2}' $s; done"
    ).split()
    assert set(worker_uids) == {"101"}
    # The image's tini is PID 1 in web (it reaps zombies and forwards signals).
    assert shared_stack.exec("web", "cat", "/proc/1/cmdline").startswith("tini\0")
    # db meets web on a network with no route out, and has its way out to the remote copy
    # (egress), which only photos-backup shares: nothing there publishes a port.
    name = shared_stack.project.name
    networks = shared_stack.inspect("db")["NetworkSettings"]["Networks"]
    assert sorted(networks) == [f"{name}_backend", f"{name}_egress"]
    assert network_services(name, "backend") == {"db", "web"}
    assert network_services(name, "egress") == {"db", "photos-backup"}


def test_web_has_no_route_out(shared_stack, containers, free_port):
    """A web compromised through an upload reaches nothing beyond the stack: every network it
    is on is internal (outbound until WEB_NETWORK_INTERNAL=false). A listener on the VM shows
    the difference: a container on nginx's published network reaches it, web cannot."""
    name = shared_stack.project.name
    networks = shared_stack.inspect("web")["NetworkSettings"]["Networks"]
    assert sorted(networks) == [f"{name}_backend", f"{name}_outbound", f"{name}_upstream"]
    for network in networks:
        assert json.loads(docker("network", "inspect", network).stdout)[0]["Internal"], network
    address = (shared_stack.gateway_address(), free_port())
    with socket.create_server(address) as listener:
        connect = f"import socket; socket.create_connection({address!r}, timeout=5)"
        reached = containers.run_once(
            shared_stack.inspect("web")["Config"]["Image"], "python", "-c", connect,
            options=["--network", f"{name}_frontend"],
        )  # fmt: skip
        assert reached.returncode == 0, reached.stderr
        listener.accept()[0].close()
        from_web = shared_stack.project.exec("web", "python", "-c", connect, check=False)
    assert from_web.returncode != 0
    assert "Network is unreachable" in from_web.stderr, from_web.stderr


def network_services(project: str, network: str) -> set[str]:
    """The compose services with a container on the project's `network`."""
    [inspected] = json.loads(docker("network", "inspect", f"{project}_{network}").stdout)
    return {container["Name"].removeprefix(f"{project}-").rsplit("-", 1)[0]
            for container in inspected["Containers"].values()}  # fmt: skip


def test_nginx_writes_only_to_its_tmpfs(shared_stack):
    mounts = {m["Destination"]: m for m in shared_stack.inspect("nginx")["Mounts"]}
    assert mounts["/srv/media"]["RW"] is False
    assert mounts["/srv/site"]["RW"] is False
    tmpfs = shared_stack.inspect("nginx")["HostConfig"]["Tmpfs"]
    assert set(tmpfs) == {"/run/nginx", "/var/cache/nginx"}
    probe = shared_stack.project.exec(
        "nginx", "sh", "-c", "touch /etc/nginx/x /srv/site/static/x /srv/media/x", check=False
    )
    assert probe.returncode != 0
    assert probe.stderr.count("Read-only file system") == 3
