"""Django's metrics (config.metrics): requests counted by view, method and status, /metrics
answered on the metrics port only, and the files gunicorn's processes share
(config.metrics_files) kept few with exact totals: with worker processes started and killed
here, and under a real gunicorn in each mode with workers replaced every few requests."""

import collections
import http.client
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from config import metrics_files
from tests.harness import REPO
from tests.harness.ports import free_port
from tests.unit.support import SITE_HOST

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
REQUESTS = "catcollector_http_requests_total"


def samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, from Prometheus' text format."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape() -> dict[tuple, float]:
    """/metrics as Prometheus reads it: on the metrics port, no Host the site knows, plain
    HTTP."""
    response = Client().get("/metrics", SERVER_PORT=str(settings.METRICS_PORT))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(response.content.decode())


def requests_by_label(scraped: dict[tuple, float]) -> collections.Counter:
    return collections.Counter(
        {dict(labels)["view"] + " " + dict(labels)["method"] + " " + dict(labels)["status"]: value
         for (name, labels), value in scraped.items() if name == REQUESTS}
    )  # fmt: skip


@pytest.mark.django_db
def test_requests_are_counted_by_view_method_and_status_and_probes_are_not(client):
    before = scrape()
    sent = [
        ("cats:list GET", client.get("/")),
        ("cats:list GET", client.get("/")),
        ("cats:api-list POST", client.post("/api/cats/")),
        ("<unresolved> GET", client.get("/no-such-page/")),
        ("cats:list other", client.generic("BREW", "/")),
    ]
    assert client.get("/healthz").status_code == 200
    after = scrape()

    expected = collections.Counter(f"{key} {response.status_code}" for key, response in sent)
    assert requests_by_label(after) - requests_by_label(before) == expected
    assert {key.rsplit(" ", 1)[1] for key in expected} >= {"200", "404"}
    lists = (("method", "GET"), ("view", "cats:list"))
    duration = "catcollector_http_request_duration_seconds_count"
    assert after[duration, lists] - before.get((duration, lists), 0) == 2
    assert after["catcollector_http_requests_in_progress", ()] == 0
    assert after["catcollector_release_info", (("version", settings.RELEASE),)] == 1


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"SERVER_PORT": "8000"},
        # Headers say nothing about the port a request arrived on.
        {"SERVER_PORT": "8000", "HTTP_X_FORWARDED_PORT": "8001"},
        {"SERVER_PORT": "8000", "HTTP_HOST": f"{SITE_HOST}:8001"},
    ],
    ids=["default", "public-port", "forwarded-port", "host-port"],
)
def test_metrics_are_not_found_on_the_public_port(client, extra):
    assert str(settings.METRICS_PORT) == "8001"
    for path in ("/metrics", "/metrics/"):
        response = client.get(path, **extra)
        assert response.status_code == 404
        assert b"catcollector_" not in response.content


def test_the_metrics_port_answers_nothing_but_metrics():
    for path in ("/healthz", "/", "/admin/", "/metrics/"):
        response = Client().get(path, SERVER_PORT=str(settings.METRICS_PORT))
        assert response.status_code == 404, path


def test_the_rendered_nginx_config_never_names_the_metrics_port():
    """nginx proxies to GUNICORN_PORT only (the image's ports: Dockerfile), whatever values the
    templates are rendered with (nginx/render-site-config.sh lists the only names envsubst
    replaces)."""
    dockerfile = (REPO / "Dockerfile").read_text()
    port, metrics_port = (
        re.search(rf"\b{name}=(\d+)", dockerfile).group(1)
        for name in ("GUNICORN_PORT", "GUNICORN_METRICS_PORT")
    )
    script = (REPO / "nginx/render-site-config.sh").read_text()
    names = re.search(r"rendered_variables='([^']*)'", script).group(1).split()
    assert "NGINX_UPSTREAM_HOST" in names
    rendered = "\n".join(
        re.sub(
            r"\$\{([A-Z_]+)\}",
            lambda m: f"value-of-{m.group(1)}" if m.group(1) in names else m.group(0),
            path.read_text(),
        )
        for path in [REPO / "nginx/nginx.conf", *sorted((REPO / "nginx/templates").glob("*"))]
        if path.is_file()
    )
    assert re.findall(r"\bserver\s+\S+:(\d+)", rendered) == [port]
    assert not re.search(rf"(?<!\d){metrics_port}(?!\d)", rendered)


# --- The files gunicorn's processes share --------------------------------------------------

WORKER = """
import sys
from config.metrics import DURATION, IN_PROGRESS, REQUESTS
for line in sys.stdin:
    if line.strip() == "hold":
        IN_PROGRESS.inc()  # a request it will be killed in
    else:
        for _ in range(int(line)):
            REQUESTS.labels("cats:list", "GET", "200").inc()
            DURATION.labels("cats:list", "GET").observe(0.004)
    print("done", flush=True)
"""


class Worker:
    """A process writing metrics into `folder` as a gunicorn worker does."""

    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            cwd=REPO,
            env={"PROMETHEUS_MULTIPROC_DIR": str(folder), "PATH": "/usr/bin:/bin"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.process.pid

    def send(self, command: str) -> None:
        self.process.stdin.write(f"{command}\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "done\n"

    def kill(self) -> None:
        """SIGKILL, as gunicorn's timeout or the kernel's OOM killer does, then reaped."""
        self.process.kill()
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()


def totals(folder: Path) -> dict[str, float]:
    collected = metrics_files.FolderCollector(None, path=str(folder)).collect()
    found = {sample.name: sample.value for metric in collected for sample in metric.samples}
    return {
        "requests": found.get(REQUESTS, 0),
        "observed": found.get("catcollector_http_request_duration_seconds_count", 0),
        "in_progress": found.get("catcollector_http_requests_in_progress", 0),
    }


def test_dead_workers_fold_into_archives_with_exact_totals_and_few_files(tmp_path):
    """Workers are killed and replaced while a scraper reads the folder: every total the
    scraper sees only grows, each is exact once a dead worker is folded, and the folder holds
    three files per live worker, two archives and the lock."""
    seen: list[dict] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def scraper() -> None:
        while not stop.is_set():
            try:
                seen.append(totals(tmp_path))
            except Exception as error:  # a scrape that fails fails the test
                errors.append(error)

    reader = threading.Thread(target=scraper)
    reader.start()
    live = [Worker(tmp_path) for _ in range(3)]
    served = 0
    try:
        for _ in range(16):
            for worker in live:
                worker.send("25")
                served += 25
            dead = live.pop(0)
            dead.send("hold")
            dead.kill()
            metrics_files.worker_exited(tmp_path, dead.pid)
            live.append(Worker(tmp_path))
            assert totals(tmp_path) == {"requests": served, "observed": served, "in_progress": 0}
            files = sorted(path.name for path in tmp_path.iterdir())
            assert len(files) <= 3 * len(live) + 3, files
    finally:
        stop.set()
        reader.join()
        for worker in live:
            worker.kill()
    assert {"counter_archive.db", "histogram_archive.db", "lock"} <= set(files)
    assert errors == []
    assert len(seen) > 50
    for name in ("requests", "observed"):
        values = [total[name] for total in seen]
        assert values == sorted(values), name


def test_an_empty_file_fails_no_scrape_and_goes_with_its_worker(tmp_path):
    """A process creates its file empty and sizes it a moment later; a worker killed in
    between leaves it empty for good (client_python#1199)."""
    worker = Worker(tmp_path)
    try:
        worker.send("3")
        (tmp_path / "counter_999999.db").touch()
        (tmp_path / "histogram_999999.db").touch()
        assert totals(tmp_path)["requests"] == 3
        metrics_files.worker_exited(tmp_path, 999999)
        assert not list(tmp_path.glob("*_999999.db"))
        assert totals(tmp_path)["requests"] == 3
    finally:
        worker.kill()


# --- A real gunicorn, in each mode -------------------------------------------------------

MODES = {
    "sync": {"GUNICORN_MODE": "wsgi", "GUNICORN_THREADS": "1"},
    "gthread": {"GUNICORN_MODE": "wsgi", "GUNICORN_THREADS": "4"},
    "asgi": {"GUNICORN_MODE": "asgi"},
}
WORKERS = 2
# What nginx sends behind an HTTPS load balancer.
PROXIED = {"Host": SITE_HOST, "X-Forwarded-Proto": "https"}


def get(port: int, path: str) -> tuple[int, bytes]:
    """One request on a new connection; sent again once if the connection closed unanswered
    (a uvicorn worker stopping for max_requests drops a connection it has not read yet:
    docs/image.md, Replacing a worker), which Django never saw."""
    for attempt in range(2):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            connection.request("GET", path, headers=PROXIED)
            response = connection.getresponse()
            return response.status, response.read()
        except (ConnectionError, http.client.RemoteDisconnected):
            if attempt:
                raise
        finally:
            connection.close()
    raise AssertionError("unreachable")


@pytest.mark.parametrize("mode", MODES)
def test_gunicorn_counts_every_request_across_replaced_workers(tmp_path, mode):
    """The image's gunicorn configuration with two ports, two workers each replaced after 10
    requests: the metrics port sums every worker, dead ones included, and the public port has
    no /metrics."""
    port, metrics_port = free_port(), free_port()
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {
        **os.environ,
        **MODES[mode],
        "GUNICORN_PORT": str(port),
        "GUNICORN_METRICS_PORT": str(metrics_port),
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "GUNICORN_WORKERS": str(WORKERS),
        "GUNICORN_MAX_REQUESTS": "10",
        "GUNICORN_MAX_REQUESTS_JITTER": "2",
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    with (tmp_path / "out").open("w") as out:
        server = subprocess.Popen(
            [GUNICORN, "--config", "python:config.gunicorn",
             f"--bind=127.0.0.1:{port}", f"--bind=127.0.0.1:{metrics_port}"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (tmp_path / "out").read_text()
            try:
                get(metrics_port, "/metrics")
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not come up"
                time.sleep(0.2)

        assert get(port, "/metrics")[0] == 404
        for _ in range(60):
            assert get(port, "/no-such-page/")[0] == 404
        # A worker being replaced counts no threads until its successor is ready.
        threads = WORKERS * int(MODES[mode].get("GUNICORN_THREADS", 0))
        for _ in range(20):
            status, body = get(metrics_port, "/metrics")
            assert status == 200
            scraped = samples(body.decode())
            if scraped["catcollector_gunicorn_threads", ()] == threads:
                break
            time.sleep(0.1)
        assert scraped["catcollector_gunicorn_threads", ()] == threads
        not_found = (("method", "GET"), ("status", "404"), ("view", "<unresolved>"))
        assert scraped[REQUESTS, not_found] == 61
        assert scraped["catcollector_http_requests_in_progress", ()] == 0
        files = {path.name for path in folder.iterdir()}
        assert {"counter_archive.db", "histogram_archive.db"} <= files
        # Three per worker (a replaced one may not be reaped yet), the master's gauges, the
        # archives and the lock.
        assert len(files) <= 3 * (WORKERS + 1) + 4, sorted(files)
    finally:
        server.terminate()
        server.wait(timeout=30)
