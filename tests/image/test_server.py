"""gunicorn in the image: signals, a read-only root, workers, trust, logs, every server mode."""

import http.client
import io
import json
import os
import secrets
import threading
import time

import pytest
import requests
from PIL import Image

from tests.harness.docker import docker
from tests.harness.polling import wait_until
from tests.image.conftest import MODES, SITE_HOST, WEB_PORT, Database, Web, wait_healthy

# From the limit to a new worker serving: a worker recycle must never leave the container
# without it for long (uvicorn checks the limit on a one-second heartbeat).
REPLACEMENT_BOUND_S = 10
WORKER_CLASS_NAMES = {"wsgi": "sync", "asgi": "config.uvicorn_worker.JsonUvicornWorker"}
ACCESS_KEYS = {
    "time", "level", "logger", "message", "request_id",
    "method", "path", "status", "duration_ms", "remote_addr", "bytes",
}  # fmt: skip


def booted_workers(web: Web) -> int:
    return sum(line["message"].startswith("Booting worker") for line in web.log_lines())


def access_lines(web: Web, path: str) -> list[dict]:
    return [
        line
        for line in web.log_lines()
        if line["logger"] == "gunicorn.access" and line["path"] == path
    ]


def outcome(web: Web, path: str) -> int | str:
    """The status, or the error a client would see instead."""
    try:
        return web.get(path).status_code
    except requests.RequestException as error:
        return repr(error)


def request_from_network(containers, image: str, network: str, url: str, headers: dict) -> int:
    """One GET from another container on the network, the way nginx reaches gunicorn."""
    script = (
        "import http.client, json, sys, urllib.parse\n"
        "url = urllib.parse.urlsplit(sys.argv[1])\n"
        "connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)\n"
        "connection.request('GET', url.path, headers=json.loads(sys.argv[2]))\n"
        "print(connection.getresponse().status)\n"
    )
    result = containers.run_once(
        image, "python", "-c", script, url, json.dumps(headers), options=["--network", network]
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def test_tini_is_pid_1_and_gunicorn_its_child(database, web_factory):
    web = web_factory(database)
    processes = web.container.exec(
        "sh", "-c", "for p in /proc/[0-9]*; do echo $(basename $p) $(cut -d' ' -f4 $p/stat) "
        "$(tr '\\0' ' ' < $p/cmdline); done",
    ).stdout.splitlines()  # fmt: skip
    table = {int(pid): (int(ppid), cmd) for pid, ppid, cmd in (p.split(" ", 2) for p in processes)}
    assert table[1][1].startswith("tini -- /app/scripts/entrypoint gunicorn")
    masters = [pid for pid, (ppid, cmd) in table.items() if ppid == 1 and "gunicorn" in cmd]
    assert len(masters) == 1, table
    # The entrypoint exec'd gunicorn: no shell stays between tini and the server.
    assert "/opt/venv/bin/gunicorn" in table[masters[0]][1]
    assert any(ppid == masters[0] for ppid, _cmd in table.values())


@pytest.mark.parametrize("mode", MODES)
def test_sigterm_lets_a_slow_request_finish_then_exits_0(mode, database: Database, web_factory):
    """The request is slow because the test holds a lock on the table it reads, from the
    host, so the production URLconf needs no test-only view; the lock is released only after
    gunicorn has received SIGTERM."""
    web = web_factory(database, env={"GUNICORN_MODE": mode})
    result = {}

    def slow_request() -> None:
        result["response"] = web.get("/api/cats/")

    with database.connect() as holder:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE cats_cat IN ACCESS EXCLUSIVE MODE")
        request = threading.Thread(target=slow_request)
        request.start()
        wait_until(
            lambda: database.query(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                "%cats_cat%",
            ),
            30,
            interval=0.1,
            what="the request waiting on the locked table",
        )
        docker("kill", "--signal", "TERM", web.container.name)
        web.container.wait_for_log("Handling signal: term", timeout=10)
        time.sleep(1)
        assert request.is_alive()
        assert web.container.status() == "running"
        holder.execute("COMMIT")
    request.join(timeout=30)

    assert result["response"].status_code == 200
    assert result["response"].json()["results"] == []
    assert web.container.wait_exit(timeout=40) == 0
    assert [line["status"] for line in access_lines(web, "/api/cats/")] == [200]


def photo(size: tuple[int, int]) -> bytes:
    """A PNG of noise (incompressible): 1200x900 is over Django's 2.5 MB in-memory limit, so
    the upload goes through a temporary file in /tmp."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def test_read_only_root_with_every_capability_dropped(database, web_factory):
    web = web_factory(
        database,
        options=(
            "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--volume", "/srv/media",
        ),
    )  # fmt: skip
    password = secrets.token_urlsafe(16)
    web.container.exec(
        "python", "manage.py", "createsuperuser", "--noinput",
        env={"DJANGO_SUPERUSER_USERNAME": "editor", "DJANGO_SUPERUSER_EMAIL": "e@example.com",
             "DJANGO_SUPERUSER_PASSWORD": password},
    )  # fmt: skip
    session = requests.Session()
    session.headers["Host"] = SITE_HOST
    # Adding a cat needs a signed-in user: the admin's login page, which returns to the form.
    login = session.get(f"{web.url}/cats/new/", timeout=30)
    assert login.status_code == 200
    assert "/admin/login/" in login.url
    form = session.post(
        login.url,
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"], "username": "editor",
              "password": password, "next": "/cats/new/"},
        timeout=30,
    )  # fmt: skip
    assert form.url == f"{web.url}/cats/new/"
    token = session.cookies["csrftoken"]
    big = photo((1200, 900))
    assert len(big) > 2.5 * 1024 * 1024
    created = session.post(
        f"{web.url}/cats/new/",
        data={"csrfmiddlewaretoken": token, "name": "Read-only Rita", "age": "3"},
        files={"photo": ("rita.png", big, "image/png")},
        allow_redirects=False,
        timeout=60,
    )
    assert created.status_code == 302, created.text[:500]
    detail = session.get(web.url + created.headers["Location"], timeout=30)
    assert detail.status_code == 200
    assert "Read-only Rita" in detail.text
    stored = web.container.exec("sh", "-c", "ls -l /srv/media/cats").stdout
    assert ".png" in stored
    assert str(len(big)) in stored
    manifest = json.loads(web.container.exec("cat", "/srv/static/staticfiles.json").stdout)
    stylesheet = manifest["paths"]["cats/style.css"]
    assert session.get(f"{web.url}/static/{stylesheet}", timeout=30).status_code == 200
    problems = [line for line in web.log_lines() if line["level"] not in ("DEBUG", "INFO")]
    assert problems == []


def test_control_socket_is_off_by_default_and_works_on_tmpfs(database, web_factory):
    read_only = ("--read-only", "--tmpfs", "/tmp")
    default = web_factory(database, options=read_only)
    assert not any("control socket" in line["message"].lower() for line in default.log_lines())

    web = web_factory(
        database, env={"GUNICORN_CONTROL_SOCKET": "/tmp/gunicorn.ctl"}, options=read_only
    )
    shown = web.container.exec("gunicornc", "-s", "/tmp/gunicorn.ctl", "-c", "show workers", "-j")
    assert len(json.loads(shown.stdout)["workers"]) == booted_workers(web)


def engine_cpus() -> int:
    return int(docker("info", "--format", "{{.NCPU}}").stdout)


def test_default_workers_follow_the_containers_cpu_quota(database: Database, web_factory):
    """Two workers per CPU the container may use (at most 8): its CFS quota (`--cpus`,
    rounded up), its cpuset, else every CPU of the machine."""
    cases = {
        ("--cpus", "1"): 2,
        ("--cpus", "1.5"): 4,
        ("--cpuset-cpus", "0"): 2,
        (): min(2 * engine_cpus(), 8),
    }
    webs = {}

    def start(options: tuple[str, ...]) -> None:
        webs[options] = web_factory(database, options=options, healthy=False)

    threads = [threading.Thread(target=start, args=(options,)) for options in cases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for options, expected in cases.items():
        wait_healthy(webs[options].container)
        assert booted_workers(webs[options]) == expected, options

    override = web_factory(database, env={"GUNICORN_WORKERS": "3"}, options=("--cpus", "1"))
    assert booted_workers(override) == 3


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_writes_json_access_lines_with_the_request_id(mode, database, web_factory):
    web = web_factory(database, env={"GUNICORN_MODE": mode})
    assert web.get("/api/cats/", headers={"X-Request-ID": f"req-{mode}-1"}).status_code == 200
    assert web.get("/nope/", headers={"X-Request-ID": f"req-{mode}-2"}).status_code == 404
    assert web.get("/healthz", headers={"X-Request-ID": "not a safe id"}).status_code == 200

    lines = web.log_lines()  # every line on stdout parses as JSON
    assert f"Using worker: {WORKER_CLASS_NAMES[mode]}" in [line["message"] for line in lines]
    [api] = access_lines(web, "/api/cats/")
    assert set(api) >= ACCESS_KEYS
    assert api["message"] == "GET /api/cats/ 200"
    assert (api["request_id"], api["method"], api["status"]) == (f"req-{mode}-1", "GET", 200)
    assert api["bytes"] == len(web.get("/api/cats/").content)
    assert api["duration_ms"] > 0
    [missing] = access_lines(web, "/nope/")
    django = [line for line in lines if line["message"] == "Not Found: /nope/"]
    assert [line["request_id"] for line in django] == [missing["request_id"]] == [f"req-{mode}-2"]
    probes = [line for line in access_lines(web, "/healthz") if line["remote_addr"] != "127.0.0.1"]
    assert [line["request_id"] for line in probes] == [None]
    assert "not a safe id" not in docker("logs", web.container.name).stdout


@pytest.mark.parametrize("mode", MODES)
def test_django_alone_decides_the_scheme_and_the_proxys_network_the_logged_client(
    mode, containers, database, web_factory
):
    """The request comes from the proxy's network, where nginx is: neither gunicorn nor
    uvicorn turns its X-Forwarded-Proto into HTTPS, so DJANGO_TRUST_X_FORWARDED_PROTO alone
    decides. GUNICORN_FORWARDED_ALLOW_IPS only decides whose X-Forwarded-For the access log
    believes."""
    redirecting = {"GUNICORN_MODE": mode, "DJANGO_SECURE_SSL_REDIRECT": "true"}
    default = web_factory(database, env=redirecting)
    distrusting = web_factory(
        database, env=redirecting | {"DJANGO_TRUST_X_FORWARDED_PROTO": "false"}
    )
    elsewhere = web_factory(
        database, env=redirecting | {"GUNICORN_FORWARDED_ALLOW_IPS": "192.0.2.1"}
    )
    headers = {"Host": SITE_HOST, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}

    def status(web: Web) -> int:
        url = f"http://{web.container.ip_address(database.network)}:{WEB_PORT}/api/cats/"
        return request_from_network(containers, web.container.image, database.network, url, headers)

    assert status(default) == 200
    assert status(distrusting) == 301
    assert status(elsewhere) == 200
    assert [line["remote_addr"] for line in access_lines(default, "/api/cats/")] == ["203.0.113.7"]
    [untrusted] = access_lines(elsewhere, "/api/cats/")
    assert untrusted["remote_addr"] not in ("203.0.113.7", "127.0.0.1", "-")


def test_uvicorn_runs_on_uvloop_and_httptools(database, web_factory):
    """uvicorn's "auto" loop and parser fall back to asyncio and h11, silently and slower,
    when these are not installed; the benchmarks compare wsgi with uvicorn at its best."""
    web = web_factory(database, env={"GUNICORN_MODE": "asgi", "GUNICORN_WORKERS": "1"})
    assert web.get("/api/cats/").status_code == 200
    # Libraries mapped by the workers: processes whose parent is neither tini nor nothing.
    workers = web.container.exec(
        "sh", "-c", "for p in /proc/[0-9]*; do case $(cut -d' ' -f4 $p/stat) in 0|1) ;; "
        "*) cat $p/maps;; esac; done",
    ).stdout  # fmt: skip
    assert "/uvloop/loop." in workers
    assert "/httptools/parser/parser." in workers


@pytest.mark.parametrize("mode", MODES)
def test_workers_are_recycled_after_max_requests(mode, database, web_factory):
    web = web_factory(
        database,
        env={
            "GUNICORN_MODE": mode,
            "GUNICORN_WORKERS": "1",
            "GUNICORN_MAX_REQUESTS": "4",
            "GUNICORN_MAX_REQUESTS_JITTER": "0",
        },
    )
    # Exactly the limit: uvicorn closes a connection it has accepted but not yet read when it
    # stops for max_requests (docs/image.md, gunicorn), so no request is sent meanwhile.
    assert [outcome(web, "/api/cats/") for _ in range(4)] == [200] * 4
    # uvicorn notices the limit on its next tick. A worker that lingers on its way out (its
    # database pool's threads) leaves the container without one.
    wait_until(lambda: booted_workers(web) >= 2, REPLACEMENT_BOUND_S, what="a replacement worker")
    assert [outcome(web, "/api/cats/") for _ in range(4)] == [200] * 4
    lingering = [line for line in web.log_lines() if "couldn't stop thread" in line["message"]]
    assert lingering == []


@pytest.mark.parametrize("mode", MODES)
def test_idle_keep_alive_connections_do_not_hold_up_a_stop(mode, database, web_factory):
    """nginx keeps idle connections to gunicorn open (upstream keepalive): stopping must not
    wait for them, only for requests in flight."""
    web = web_factory(database, env={"GUNICORN_MODE": mode})
    idle = []
    for _ in range(4):
        connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=60)
        connection.request("GET", "/healthz", headers={"Host": SITE_HOST})
        connection.getresponse().read()
        idle.append(connection)
    started = time.monotonic()
    web.container.stop(timeout_s=30)
    seconds = time.monotonic() - started
    for connection in idle:
        connection.close()
    assert web.container.inspect()["State"]["ExitCode"] == 0
    assert seconds < 10
