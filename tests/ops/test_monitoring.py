"""The monitoring set (compose.monitoring.yaml) switched on as an operator does, and its alerts
firing for real: one stack's life, in order (tests/ops/conftest.py).

The stack comes up with ./ops deploy; the set is switched on by the next deploy, with the
worker beside it (two overrides in COMPOSE_FILE, as docs/operations.md says to keep them), with
no request failing meanwhile; a backup is taken and ./ops metrics writes the VM's facts;
Alertmanager sends to a webhook receiver of the test's own (a container on the monitoring
network, published on 127.0.0.1 only). Prometheus reads every hop, and ./ops status --json and
the metrics agree. Nothing of it is reachable through nginx's public port. Then: web stopped,
SiteDown reaches the webhook within a bound, and how long it took is recorded; then, at once, a
table renamed away, so every page is a 500 while the probes stay green (HighErrorRatio fires),
and the newest archive made 27 hours old (BackupTooOld fires). Last, the monitoring set's
memory, for the sizing table.

Prometheus reads and evaluates every 5 s here (PROMETHEUS_SCRAPE_INTERVAL and
PROMETHEUS_EVALUATION_INTERVAL in .env, which compose passes to its start script), instead of
15 s: the rules' own durations (`for:`) and Alertmanager's 30 s wait before a first
notification are the production ones.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import json
import re
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.harness import REPO
from tests.harness.base_images import dockerfile_base
from tests.harness.containers import Containers
from tests.harness.docker import docker
from tests.harness.measurements import record
from tests.harness.polling import wait_until
from tests.harness.ports import free_port
from tests.ops.traffic import Traffic
from tests.stack.support import SITE_HOST
from tools.ops import archive, metrics

INTERVAL_S = 5
# Those that sign in somewhere, each given its one secret: the exporters a file of the secrets
# volume, Alertmanager its SMTP password (a compose secret).
OWN_SECRETS = {
    "alertmanager": ["/run/secrets/alertmanager_smtp_password"],
    "postgres-exporter": ["/run/secrets/catcollector/postgres_app_password"],
    "redis-exporter": ["/run/secrets/catcollector/redis_password"],
}
# The services compose.monitoring.yaml adds.
MONITORING = (
    "prometheus", "alertmanager", "node-exporter", "blackbox-exporter", "nginx-exporter",
    "postgres-exporter", "redis-exporter",
)  # fmt: skip
# Bounds, from the rules (alerts.yml) and Alertmanager's route (render-config.sh): `for`, plus
# a scrape and an evaluation, Alertmanager's group_wait (30 s), and room for a busy machine.
SITE_DOWN_BOUND_S = 60 + 2 * INTERVAL_S + 30 + 50
ERROR_RATIO_BOUND_S = 120 + 2 * INTERVAL_S + 30 + 80
BACKUP_STALE_BOUND_S = 2 * INTERVAL_S + 30 + 40
UP_BOUND_S = 120
# Each page a 500 while the probes answer: the list's table renamed away, as a bad migration
# could leave it.
TABLE, AWAY = "cats_cat", "cats_cat_away"
# Above the rule's 0.2 requests a second.
ERROR_REQUESTS_PER_S = 2
STALE_HOURS = 27
WEBHOOK = "webhook"
SMTP_PORT = 2525
ALERTS_TO, ADMINS_TO = "ops@example.org", "admins@example.org"
# A receiver that keeps what Alertmanager posts to it and every mail sent to its SMTP port
# (the least of SMTP: whatever comes is accepted, without TLS or sign-in), each with the time it
# arrived; GET / lists the posts, GET /mail the mails.
RECEIVER = f"""
import http.server, json, socketserver, threading, time
received, mails = [], []
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        received.append({{"received": time.time(), "body": body}})
        self.send_response(200)
        self.end_headers()
    def do_GET(self):
        data = json.dumps(mails if self.path == "/mail" else received).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
class Smtp(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220 receiver\\r\\n")
        recipients = []
        for line in self.rfile:
            verb = line[:4].upper()
            if verb == b"RCPT":
                recipients.append(line.decode().strip())
            if verb == b"DATA":
                self.wfile.write(b"354 go on\\r\\n")
                lines = []
                for data in self.rfile:
                    if data == b".\\r\\n":
                        break
                    lines.append(data.decode(errors="replace"))
                mails.append({{"received": time.time(), "to": recipients, "text": "".join(lines)}})
                recipients = []
                self.wfile.write(b"250 kept\\r\\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\\r\\n")
                return
            else:
                self.wfile.write(b"250 ok\\r\\n")
smtp = socketserver.ThreadingTCPServer(("", {SMTP_PORT}), Smtp)
threading.Thread(target=smtp.serve_forever, daemon=True).start()
http.server.ThreadingHTTPServer(("", 8080), Receiver).serve_forever()
"""

# What earlier scenes leave for later ones (the module's tests run in order).
state: dict = {}


@pytest.fixture(scope="module")
def receivers(ops_project, run_id) -> Containers:
    """The webhook's container; removed before the project (it sits on the project's network)."""
    started = Containers(run_id, f"{ops_project.name}-webhook")
    yield started
    started.remove_all()


def prometheus(path: str, **params: str) -> dict:
    answer = requests.get(f"http://127.0.0.1:{state['prometheus_port']}{path}", params=params,
                          timeout=10)  # fmt: skip
    answer.raise_for_status()
    return answer.json()["data"]


def query(expression: str) -> list[dict]:
    return prometheus("/api/v1/query", query=expression)["result"]


def value(expression: str) -> float | None:
    result = query(expression)
    return float(result[0]["value"][1]) if result else None


def alert_state(name: str) -> str:
    """inactive, pending or firing, as Prometheus' rules evaluate it now."""
    states = {a["state"] for a in prometheus("/api/v1/alerts")["alerts"]
              if a["labels"]["alertname"] == name}  # fmt: skip
    return "firing" if "firing" in states else "pending" if states else "inactive"


def mailed(to: str, since: float) -> list[tuple[float, str]]:
    """Each mail the receiver got for `to` after `since` (Unix time): when, and its subject
    and text, decoded as a mail client would."""
    found = []
    for mail in requests.get(state["webhook_url"] + "mail", timeout=10).json():
        if mail["received"] >= since and any(to in r for r in mail["to"]):
            message = email.message_from_string(mail["text"], policy=email.policy.default)
            body = message.get_body(preferencelist=("plain", "html"))
            found.append((mail["received"], f"{message['Subject']}\n{body.get_content()}"))
    return found


def first_mail(to: str, containing: str, since: float) -> float | None:
    return next((when for when, text in mailed(to, since) if containing in text), None)


def delivered(name: str, since: float) -> float | None:
    """When the webhook first got `name` firing after `since` (Unix time), if it has."""
    received = requests.get(state["webhook_url"], timeout=10).json()
    for message in received:
        firing = [a for a in message["body"]["alerts"]
                  if a["labels"]["alertname"] == name and a["status"] == "firing"]  # fmt: skip
        if firing and message["received"] >= since:
            return message["received"]
    return None


def psql(project, sql: str) -> str:
    return project.compose(
        "exec", "-T", "db", "psql", "--username=catcollector", "--dbname=catcollector",
        "--no-align", "--tuples-only", "--set=ON_ERROR_STOP=1", "--command", sql,
    ).stdout.strip()  # fmt: skip


def get(project, path: str, host: str = SITE_HOST) -> requests.Response:
    return requests.get(project.site.url(path), headers={"Host": host,
                        "X-Forwarded-Proto": "https"}, timeout=15)  # fmt: skip


def public(project, path: str, host: str) -> requests.Response | None:
    """nginx's answer on its published port; None when it closed the connection unanswered
    (a host it does not serve: 444)."""
    try:
        return get(project, path, host)
    except requests.ConnectionError:
        return None


def containers_of(project) -> dict[str, dict]:
    """name -> docker inspect, for every container of the project."""
    ids = project.compose("ps", "--all", "--quiet").stdout.split()
    return {c["Name"].lstrip("/"): c for c in json.loads(docker("inspect", *ids).stdout)}


def test_the_next_deploy_switches_the_monitoring_set_on_losing_no_request(
    ops_project, receivers, tmp_path_factory
):
    """As docs/operations.md says: the metrics folder first (here the test's own), the
    override in COMPOSE_FILE after the worker's, the next ./ops deploy; then a backup and
    ./ops metrics."""
    ops_project.ops("deploy", "a", "--build")
    ops_project.create_superuser()
    metrics_dir = tmp_path_factory.mktemp("metrics") / "textfile"
    metrics_dir.mkdir()
    metrics_dir.chmod(0o755)
    state["prometheus_port"], alertmanager_port = free_port(), free_port()
    with (ops_project.directory / ".env").open("a") as env:
        env.write(
            "COMPOSE_FILE=compose.yaml:compose.worker.yaml:compose.monitoring.yaml\n"
            f"PROMETHEUS_PORT={state['prometheus_port']}\nALERTMANAGER_PORT={alertmanager_port}\n"
            f"PROMETHEUS_SCRAPE_INTERVAL={INTERVAL_S}s\n"
            f"PROMETHEUS_EVALUATION_INTERVAL={INTERVAL_S}s\n"
            f"OPS_METRICS_DIR={metrics_dir}\n"
            f"ALERTMANAGER_WEBHOOK_URL=http://{WEBHOOK}:8080/\n"
            f"ALERTMANAGER_EMAIL_TO={ALERTS_TO}\nALERTMANAGER_EMAIL_FROM=alerts@example.org\n"
            f"ALERTMANAGER_SMTP_SMARTHOST={WEBHOOK}:{SMTP_PORT}\n"
            "ALERTMANAGER_SMTP_REQUIRE_TLS=false\n"
            f"DJANGO_ADMINS={ADMINS_TO}\nDJANGO_SERVER_EMAIL=cats@example.org\n"
            f"DJANGO_EMAIL_HOST={WEBHOOK}\nDJANGO_EMAIL_PORT={SMTP_PORT}\n"
            "DJANGO_EMAIL_SECURITY=none\n"
        )
    with Traffic(ops_project.site) as traffic:
        ops_project.ops("deploy", "b", "--build")
    assert traffic.requests > 50
    assert traffic.failures == [], traffic.explain(ops_project.logs())
    for service in MONITORING:
        assert ops_project.container_ids(service), f"{service} did not start with the deploy"
    # ./ops backup prints the archive's path last.
    state["archive"] = Path(ops_project.ops("backup").stdout.strip().splitlines()[-1])
    receiver = receivers.run(
        dockerfile_base(REPO, "Dockerfile"), "python", "-c", RECEIVER,
        # Alertmanager's and web's mail server alike: on monitoring, where web finds it, and on
        # alerting, whose route out carries the published port these tests read.
        options=["--network", f"name={ops_project.name}_monitoring,alias={WEBHOOK}",
                 "--network", f"name={ops_project.name}_alerting,alias={WEBHOOK}",
                 "--publish", "127.0.0.1::8080"],
    )  # fmt: skip
    [binding] = receiver.inspect()["NetworkSettings"]["Ports"]["8080/tcp"]
    state["webhook_url"] = f"http://127.0.0.1:{binding['HostPort']}/"
    wait_until(lambda: requests.get(state["webhook_url"], timeout=5).json() == [], 30,
               what="the webhook receiver answers")  # fmt: skip

    ops_project.ops("metrics")
    written = metrics_dir / f"{ops_project.name}.prom"
    assert "catcollector_status 0\n" in written.read_text()
    assert written.stat().st_mode & 0o777 == 0o644

    wanted = {"prometheus", "alertmanager", "web", "nginx", "postgres", "redis", "node", "site"}

    def every_job_up() -> bool:
        up = {(r["metric"]["job"], r["value"][1]) for r in query("up")}
        return {job for job, reading in up if reading == "1"} >= wanted and all(
            reading == "1" for job, reading in up if job in wanted
        )

    wait_until(every_job_up, UP_BOUND_S, what=f"Prometheus reads every job of {sorted(wanted)}")
    # The thumbnails' queue, empty: the worker takes each task as it comes.
    assert value('redis_key_size{key="celery"}') == 0
    assert value('probe_success{job="site"}') == 1
    for name in ("SiteDown", "HighErrorRatio", "BackupTooOld", "ArchivingBehind",
                 "RestoreCheckFailed", "PhotosCopyFailing", "TargetDown"):  # fmt: skip
        assert alert_state(name) == "inactive", name


def test_every_hop_is_read_and_status_agrees_with_the_metrics(ops_project):
    for _ in range(5):
        assert get(ops_project, "/").status_code == 200
    ops_project.ops("metrics")
    started = time.monotonic()
    ops_project.ops("metrics")
    state["metrics_s"] = time.monotonic() - started
    status = json.loads(ops_project.ops("status", "--json").stdout)
    assert status["status"] == "healthy"

    def fresh() -> bool:
        age = value("time() - max(node_textfile_mtime_seconds)")
        return age is not None and age < 2 * INTERVAL_S

    wait_until(fresh, 30, what="Prometheus reads the file ./ops metrics just wrote")
    assert value("catcollector_status") == 0
    assert value("node_textfile_scrape_error") == 0
    steps = {r["metric"]["step"]: r["value"][1] for r in query("catcollector_metrics_step_ok")}
    assert steps == dict.fromkeys(metrics.READ_STEPS, "1")
    releases = {r["metric"]["version"] for r in query("catcollector_release_info")}
    assert releases == {c["version"] for c in status["services"]["web"]} == {"b"}
    web_targets = {r["metric"]["instance"] for r in query('up{job="web"}')}
    assert len(web_targets) == len(status["services"]["web"])
    wait_until(lambda: value('sum(catcollector_http_requests_total{view="cats:list"})'), 30,
               what="Django's request counter")  # fmt: skip

    containers = {r["metric"]["container"]: r for r in query("catcollector_container_memory_bytes")}
    running = {c["name"] for service in status["services"].values() for c in service}
    assert running <= set(containers)
    config = json.loads(ops_project.compose("config", "--format", "json").stdout)["services"]
    for name, container in containers_of(ops_project).items():
        service = container["Config"]["Labels"]["com.docker.compose.service"]
        if container["State"]["Status"] != "running":
            continue
        limit = value(f'catcollector_container_memory_limit_bytes{{container="{name}"}}')
        assert limit == int(config[service]["mem_limit"]), name
        assert 0 < value(f'catcollector_container_memory_bytes{{container="{name}"}}') < limit
        assert value(f'catcollector_container_cpu_seconds_total{{container="{name}"}}') > 0
        assert value(f'catcollector_container_oom_kills_total{{container="{name}"}}') == 0
        assert value(f'catcollector_container_restarts_total{{container="{name}"}}') == 0
    created = archive.parse_name(state["archive"].name)[1]
    assert value("catcollector_backup_newest_timestamp_seconds") == created.timestamp()
    assert value("catcollector_deploy_rolled_back_total") == 0
    assert value("catcollector_last_deploy_timestamp_seconds") > 0
    # The continuous archive (compose.yaml's db archives its WAL): current, the backup's
    # restore check passed, the photos copied to this VM's repository (no remote here).
    assert value("catcollector_archive_lag_seconds") < 600
    assert value("catcollector_restore_check_ok") == 1
    assert value("catcollector_restore_check_timestamp_seconds") >= created.timestamp()
    assert {r["metric"]["repository"]: r["value"][1] for r in
            query("catcollector_photos_copy_ok")} == {"local": "1"}  # fmt: skip
    assert value("pg_up") == 1
    assert value("pg_settings_max_connections") > 0
    assert value("nginx_up") == 1
    assert value("nginx_connections_accepted") > 0
    assert value('node_filesystem_avail_bytes{mountpoint="/"}') > 0


def test_no_metrics_are_reachable_through_the_public_port(ops_project):
    """Through nginx's published port: Django's metrics path, nginx's status, whatever the
    Host; and no container of the set publishes a port but Prometheus and Alertmanager, on
    loopback."""
    for host in (SITE_HOST, "nginx", "web:8001", "nginx:8081", "127.0.0.1"):
        for path in ("/metrics", "/stub_status", "/-/ready", "/probe"):
            answer = public(ops_project, path, host)
            # The site's own host is answered (404), so at least those are read.
            assert answer is not None or host != SITE_HOST, (host, path)
            if answer is not None:
                assert answer.status_code == 404, (host, path, answer.status_code)
                assert "catcollector_" not in answer.text, (host, path)
                assert "Active connections" not in answer.text, (host, path)
    published = {}
    for container in containers_of(ops_project).values():
        service = container["Config"]["Labels"]["com.docker.compose.service"]
        for bindings in (container["HostConfig"]["PortBindings"] or {}).values():
            published.setdefault(service, set()).update(b["HostIp"] for b in bindings)
    assert set(published) == {"nginx", "prometheus", "alertmanager"}
    assert published["prometheus"] == published["alertmanager"] == {"127.0.0.1"}


def test_the_monitoring_containers_are_locked_down_like_web(ops_project):
    containers = containers_of(ops_project)
    by_service = {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in
                  containers.values()}  # fmt: skip
    web = by_service["web"]["HostConfig"]
    for service in MONITORING:
        host = by_service[service]["HostConfig"]
        for key in ("ReadonlyRootfs", "CapDrop", "SecurityOpt", "LogConfig"):
            assert host[key] == web[key], (service, key)
        assert not host["CapAdd"], service
        assert 0 < host["CpuShares"] < web["CpuShares"], service
        assert 0 < host["Memory"] <= web["Memory"], service
        assert host["PidsLimit"] > 0, service
        user = by_service[service]["Config"]["User"]
        assert user, service
        assert not user.startswith(("0", "root")), (service, user)
        # A secret of its own at most: never the folder of every secret of the stack.
        secrets = [m["Destination"] for m in by_service[service]["Mounts"]
                   if m["Destination"].startswith("/run/secrets")]  # fmt: skip
        assert secrets == OWN_SECRETS.get(service, []), service
    networks = set(by_service["web"]["NetworkSettings"]["Networks"])
    assert f"{ops_project.name}_monitoring" in networks


def test_web_stopped_reaches_the_webhook_as_site_down_within_the_bound(ops_project):
    stopped = time.time()
    ops_project.compose("stop", "web")
    arrived = wait_until(lambda: delivered("SiteDown", stopped), SITE_DOWN_BOUND_S, interval=1,
                         what="SiteDown at the webhook")  # fmt: skip
    # The same notification, by mail.
    wait_until(lambda: first_mail(ALERTS_TO, "SiteDown", stopped), 30, interval=1,
               what="SiteDown mailed to ALERTMANAGER_EMAIL_TO")  # fmt: skip
    record("SiteDown reaches the webhook", {
        "seconds": round(arrived - stopped, 1), "scrape_and_evaluation_interval_s": INTERVAL_S,
    })  # fmt: skip
    ops_project.compose("start", "web")
    wait_until(lambda: get(ops_project, "/readyz").status_code == 200, UP_BOUND_S,
               what="the site serves again")  # fmt: skip
    wait_until(lambda: alert_state("SiteDown") == "inactive", 6 * INTERVAL_S,
               what="SiteDown resolved in Prometheus")  # fmt: skip


def test_server_errors_and_a_stale_backup_each_reach_the_webhook(ops_project):
    """Two failures at once, each its own alert (Alertmanager groups by alert name). Every page
    a 500 (the list's table renamed away) while /readyz stays 200: the site up for the
    balancer, failing for visitors. And the only archive renamed 27 hours into the past, as a
    schedule that stopped would leave it: ./ops metrics reports its time, and BackupTooOld
    fires with no `for`."""
    psql(ops_project, f"ALTER TABLE {TABLE} RENAME TO {AWAY}")
    stop = threading.Event()
    statuses: list[int] = []
    request_ids: list[str] = []

    def visitors() -> None:
        deadline = time.monotonic() + ERROR_RATIO_BOUND_S + 60
        while not stop.is_set() and time.monotonic() < deadline:
            answer = get(ops_project, "/")
            statuses.append(answer.status_code)
            request_ids.append(answer.headers["X-Request-ID"])
            stop.wait(1 / ERROR_REQUESTS_PER_S)

    started = time.time()
    load = threading.Thread(target=visitors, daemon=True)
    load.start()
    try:
        stale_since = make_the_newest_backup_stale(ops_project)
        stale_arrived = wait_until(lambda: delivered("BackupTooOld", stale_since),
                                   BACKUP_STALE_BOUND_S, interval=1,
                                   what="BackupTooOld at the webhook")  # fmt: skip
        age = time.time() - value("catcollector_backup_newest_timestamp_seconds")
        assert STALE_HOURS * 3600 < age < (STALE_HOURS + 1) * 3600
        wait_until(lambda: alert_state("HighErrorRatio") == "firing",
                   ERROR_RATIO_BOUND_S - (time.time() - started), interval=1,
                   what="HighErrorRatio firing in Prometheus")  # fmt: skip
        fired = time.time()
        arrived = wait_until(lambda: delivered("HighErrorRatio", started), 60, interval=1,
                             what="HighErrorRatio at the webhook")  # fmt: skip
        assert get(ops_project, "/readyz").status_code == 200
        assert alert_state("SiteDown") == "inactive"
        # Django's own report of the error, to DJANGO_ADMINS, with the failed request's id.
        errors_mailed = mailed(ADMINS_TO, started)
        assert errors_mailed, "no unhandled error was mailed to DJANGO_ADMINS"
        assert all(any(i in text for i in request_ids) for _, text in errors_mailed), errors_mailed[
            0
        ][1][:2000]
    finally:
        stop.set()
        load.join(timeout=30)
        psql(ops_project, f"ALTER TABLE {AWAY} RENAME TO {TABLE}")
    assert set(statuses) == {500}, set(statuses)
    record("HighErrorRatio from a burst of 500s", {
        "firing_s": round(fired - started, 1), "webhook_s": round(arrived - started, 1),
        "requests_per_s": ERROR_REQUESTS_PER_S, "scrape_and_evaluation_interval_s": INTERVAL_S,
    })  # fmt: skip
    record("BackupTooOld reaches the webhook", {
        "seconds": round(stale_arrived - stale_since, 1),
        "scrape_and_evaluation_interval_s": INTERVAL_S,
    })  # fmt: skip
    assert get(ops_project, "/").status_code == 200


def make_the_newest_backup_stale(project) -> float:
    """The scene's archive renamed STALE_HOURS into the past, then ./ops backups and ./ops
    metrics, as the timers run them; when the metrics were written (Unix time)."""
    newest: Path = state["archive"]
    created = archive.parse_name(newest.name)[1]
    older = newest.with_name(archive.archive_name(
        archive.parse_name(newest.name)[0], created - datetime.timedelta(hours=STALE_HOURS)
    ))  # fmt: skip
    newest.rename(older)
    project.ops("backups")
    written = time.time()
    project.ops("metrics")
    return written


def test_the_monitoring_sets_memory(ops_project):
    """After the scenes above, for the sizing table: docker stats of each container of the
    set, what Prometheus holds, and what one ./ops metrics took."""
    services = {name: c["Config"]["Labels"]["com.docker.compose.service"]
                for name, c in containers_of(ops_project).items()}  # fmt: skip
    names = [name for name, service in services.items() if service in MONITORING]
    listed = docker("stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}", *names)
    mib = {}
    for line in listed.stdout.splitlines():
        name, usage = line.split("\t")
        mib[services[name]] = round(to_mib(usage.split(" / ")[0]), 1)
    assert set(mib) == set(MONITORING)
    record("monitoring set memory", {**mib, "total": round(sum(mib.values()), 1)})
    series = value("prometheus_tsdb_head_series")
    assert series > 0
    record("prometheus head series", {"series": series})
    record("ops metrics run", {"seconds": round(state["metrics_s"], 2)})


def to_mib(size: str) -> float:
    """docker stats' 12.3MiB, 1.2GiB, 900KiB, 512B."""
    number, unit = re.fullmatch(r"([\d.]+)([KMG]iB|B)", size.strip()).groups()
    return float(number) * {"B": 2**-20, "KiB": 2**-10, "MiB": 1, "GiB": 2**10}[unit]
