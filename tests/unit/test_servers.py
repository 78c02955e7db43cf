"""The WSGI and ASGI entry points under a real gunicorn, against the throwaway cluster."""

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.errors import EXIT_CODE
from tests.harness import REPO
from tests.harness.ports import free_port
from tests.unit.support import SITE_HOST, run_python

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
SERVERS = {
    "wsgi": ["config.wsgi:application", "-k", "gthread", "--threads", "4"],
    "asgi": ["config.asgi:application", "-k", "uvicorn_worker.UvicornWorker"],
}
PROXIED = {"Host": SITE_HOST, "X-Forwarded-Proto": "https"}
PROBE = {"Host": "10.0.3.17"}


class Server:
    def __init__(self, app: list[str], env: dict[str, str]) -> None:
        self.env = env
        self.port = port = free_port()
        self.process = subprocess.Popen(
            [GUNICORN, *app, "--workers=1", f"--bind=127.0.0.1:{port}", "--no-control-socket"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            self._wait_until_up(deadline=time.monotonic() + 30)
        except BaseException:
            self.process.kill()
            self.process.communicate()
            raise

    def _wait_until_up(self, deadline: float) -> None:
        while not self._answers():
            assert self.process.poll() is None, self.process.communicate()
            assert time.monotonic() < deadline, "gunicorn did not come up"
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            self.get("/healthz", PROBE)
        except OSError:
            return False
        return True

    def get(self, path: str, headers: dict[str, str], method: str = "GET"):
        """One request, redirects not followed: (status, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            connection.request(method, path, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def stop(self) -> str:
        """Stop gracefully; return what the server wrote to stdout."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        assert self.process.returncode == 0, stderr
        return stdout


@pytest.fixture(params=SERVERS)
def server(request, cluster):
    database = f"servers_{request.param}"
    cluster.psql(f"CREATE DATABASE {database}")
    try:
        server = Server(SERVERS[request.param], os.environ | {"POSTGRES_DB": database})
        yield server
        if server.process.poll() is None:
            server.stop()
    finally:
        cluster.psql(f"DROP DATABASE {database} WITH (FORCE)")


def test_real_server_serves_probes_pages_and_json_logs(server):
    assert server.get("/healthz", PROBE) == (200, b'{"status": "ok"}')

    status, body = server.get("/readyz", PROBE)
    assert status == 503
    assert json.loads(body)["reason"].endswith("unapplied migration(s)")
    migrate = run_python("manage.py", "migrate", "--verbosity", "0", env=server.env)
    assert migrate.returncode == 0, migrate.stderr
    assert server.get("/readyz", PROBE) == (200, b'{"status": "ok"}')

    status, body = server.get("/", PROXIED)
    assert status == 200
    assert b'href="/static/cats/style.' in body
    assert server.get("/", PROXIED | {"X-Forwarded-Proto": "http"})[0] == 301
    assert server.get("/api/cats/", PROXIED, method="POST")[0] == 405
    assert server.get("/nope/", PROXIED | {"X-Request-ID": "req-e2e-1"})[0] == 404

    lines = [json.loads(line) for line in server.stop().splitlines()]
    not_found = [line for line in lines if line["message"] == "Not Found: /nope/"]
    assert [line["request_id"] for line in not_found] == ["req-e2e-1"]


def gunicorn_without_secret(*args: str) -> subprocess.CompletedProcess:
    return run_python(
        "-m", "gunicorn", *args, "--bind=127.0.0.1:0", "--no-control-socket",
        # The image's ENV; --bind overrides the address.
        env={"GUNICORN_PORT": "8000"},
        unset=("DJANGO_SECRET_KEY",),
    )  # fmt: skip


@pytest.mark.parametrize("app", SERVERS.values(), ids=SERVERS.keys())
def test_a_worker_that_cannot_load_the_settings_stops_gunicorn(app):
    """The backstop: one error line and a halt, never a loop of workers failing to boot.

    One worker here: when several fail at once, gunicorn itself may print a HaltServer
    traceback while stopping (benoitc/gunicorn#2393), which is why its config module runs the
    preflight in the master (next test).
    """
    result = gunicorn_without_secret(*app, "--workers=1")
    assert result.returncode == EXIT_CODE
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert "DJANGO_SECRET_KEY is not set" in errors[0]
    assert "Reason: Worker failed to boot." in result.stderr
    assert "Traceback" not in result.stderr


def test_the_images_gunicorn_config_stops_it_before_any_worker():
    """The image's own command line: its config module checks the settings in the master."""
    result = gunicorn_without_secret("--config", "python:config.gunicorn", "--workers=4")
    assert result.returncode == EXIT_CODE
    assert result.stderr.startswith("error: DJANGO_SECRET_KEY is not set")
    assert len(result.stderr.splitlines()) == 1


def test_persistent_connections_are_refused_under_asgi_only():
    persistent = {"DJANGO_DB_CONNECTIONS": "persistent"}
    asgi = run_python("-c", "import config.asgi", env=persistent)
    assert asgi.returncode == EXIT_CODE
    assert asgi.stderr.startswith("error: DJANGO_DB_CONNECTIONS=persistent leaks")
    assert run_python("-c", "import config.wsgi", env=persistent).returncode == 0
