"""The monitoring set's images (compose.monitoring.yaml), their documented contracts as the
official Dockerfiles define them: entrypoint, command, user, port, volumes and the tools beside
the binary (busybox's sh and wget, a shell in the Redis exporter's alpine variant); each one
runs as compose runs it (read-only root, no capabilities, no privilege gain) and answers its
port; the version is the one its tag promises; the exporters read what compose hands them (a
password file, nginx's stub_status, a textfile folder)."""

import re
import time
import urllib.request

import yaml

from tests.harness import REPO
from tests.harness.docker import image_config
from tests.harness.standins import promised_version

ANSWER_TIMEOUT_S = 30
# As compose.monitoring.yaml runs every service.
HARDENED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true"]
# What each official Dockerfile sets: (entrypoint, command, user, port, volumes, working dir).
CONTRACTS = {
    "prom/prometheus": (
        ["/bin/prometheus"],
        [
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            "--web.console.libraries=/usr/share/prometheus/console_libraries",
            "--web.console.templates=/usr/share/prometheus/consoles",
        ],
        "65534:65534", 9090, {"/prometheus"}, "/prometheus",
    ),
    "prom/alertmanager": (
        ["/bin/alertmanager"],
        ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
        "65534:65534", 9093, {"/alertmanager"}, "/alertmanager",
    ),
    "prom/node-exporter": (["/bin/node_exporter"], None, "65534:65534", 9100, set(), ""),
    "prom/blackbox-exporter": (
        ["/bin/blackbox_exporter"], ["--config.file=/etc/blackbox_exporter/config.yml"],
        "", 9115, set(), "",
    ),
    "nginx/nginx-prometheus-exporter": (
        ["/usr/bin/nginx-prometheus-exporter"], None, "1001:1001", 9113, set(), "",
    ),
    "quay.io/prometheuscommunity/postgres-exporter": (
        ["/bin/postgres_exporter"], None, "65534:65534", 9187, set(), "",
    ),
    "oliver006/redis_exporter": (["/redis_exporter"], None, "59000:59000", 9121, set(), ""),
}  # fmt: skip
PASSWORD = "a-generated-password_0123456789"  # noqa: S105 (a throwaway test server)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (loopback, http)
        return answer.read().decode()


def published(container, port: int) -> str:
    """The loopback URL of the container's `port`, published by `--publish 127.0.0.1::PORT`."""
    [binding] = container.inspect()["NetworkSettings"]["Ports"][f"{port}/tcp"]
    return f"http://127.0.0.1:{binding['HostPort']}"


def answered(container, port: int, path: str, pattern: str) -> str:
    """GET `path` until its body matches `pattern` (bounded); the body."""
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    body = ""
    while time.monotonic() < deadline:
        try:
            body = get(published(container, port) + path)
            if re.search(pattern, body, re.MULTILINE):
                return body
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{path} never matched {pattern!r}: {body[-2000:]}\n{container.logs()}")


def contract(image: str) -> tuple:
    """CONTRACTS' entry for the image's repository (its name without the tag)."""
    return CONTRACTS[image.rsplit(":", 1)[0]]


def test_the_official_dockerfiles_contract(monitoring_image):
    entrypoint, command, user, port, volumes, workdir = contract(monitoring_image)
    config = image_config(monitoring_image)
    assert config.get("Entrypoint") == entrypoint
    assert config.get("Cmd") == command
    assert config.get("User", "") == user
    assert set(config.get("ExposedPorts") or {}) == {f"{port}/tcp"}
    assert set(config.get("Volumes") or {}) == volumes
    assert config.get("WorkingDir", "") == workdir


def test_each_runs_hardened_answers_its_port_and_is_the_promised_version(
    monitoring_image, containers
):
    port = contract(monitoring_image)[3]
    # The blackbox exporter's image runs as root; compose runs it as nobody.
    user = ["--user", "65534:65534"] if not contract(monitoring_image)[2] else []
    running = containers.run(
        monitoring_image,
        options=[*HARDENED, *user, "--tmpfs", "/tmp", "--publish", f"127.0.0.1::{port}"],
    )
    answered(running, port, "/metrics", r"^go_goroutines ")
    versions = answered(running, port, "/metrics", r"_build_info\{")
    built = re.search(r'^\w+_build_info\{[^}]*version="v?(\d+(?:\.\d+)*)', versions, re.M)
    assert built, versions[-2000:]
    wanted = promised_version(monitoring_image)
    assert built.group(1) == wanted or built.group(1).startswith(wanted + ".")


def test_prometheus_and_alertmanager_have_their_tools_sh_and_wget(
    containers, prometheus_image, alertmanager_image
):
    """compose.monitoring.yaml starts both through /bin/sh scripts and checks their health
    with wget; promtool and amtool are beside them."""
    for image, tool in ((prometheus_image, "/bin/promtool"), (alertmanager_image, "/bin/amtool")):
        result = containers.run_once(
            image, "-c", f"{tool} --version && command -v wget",
            options=["--entrypoint", "/bin/sh", *HARDENED],
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_node_exporter_reads_a_textfile_folder(containers, node_exporter_image, tmp_path):
    folder = tmp_path / "textfile"
    folder.mkdir(mode=0o755)
    (folder / "facts.prom").write_text("# TYPE probe_fact gauge\nprobe_fact 42\n")
    (folder / "facts.prom").chmod(0o644)
    exporter = containers.run(
        node_exporter_image, "--collector.textfile.directory=/textfile",
        options=[*HARDENED, "--volume", f"{folder}:/textfile:ro", "--publish", "127.0.0.1::9100"],
    )  # fmt: skip
    answered(exporter, 9100, "/metrics", r"^probe_fact 42$")


def test_the_postgres_exporter_signs_in_with_a_password_file(
    containers, postgres_exporter_image, postgres_image, tmp_path
):
    """As compose.monitoring.yaml: the password in a file of group 10001, mode 0440, read as
    nobody with that group added."""
    network = containers.network()
    database = containers.run(
        postgres_image, env={"POSTGRES_USER": "cats", "POSTGRES_PASSWORD": PASSWORD},
        options=["--network", network, "--network-alias", "db"],
    )  # fmt: skip
    database.wait_for_log(r"database system is ready to accept connections", timeout=120)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "postgres_password").write_text(PASSWORD)
    chown = containers.run_once(
        postgres_image, "sh", "-c", "chown -R 0:10001 /s && chmod 0440 /s/postgres_password",
        options=["--volume", f"{secrets}:/s"],
    )  # fmt: skip
    assert chown.returncode == 0, chown.stderr
    exporter = containers.run(
        postgres_exporter_image,
        env={
            "DATA_SOURCE_URI": "db:5432/cats?sslmode=disable",
            "DATA_SOURCE_USER": "cats",
            "DATA_SOURCE_PASS_FILE": "/run/secrets/postgres_password",
        },
        options=[
            *HARDENED, "--group-add", "10001", "--network", network,
            "--volume", f"{secrets}:/run/secrets:ro", "--publish", "127.0.0.1::9187",
        ],
    )  # fmt: skip
    answered(exporter, 9187, "/metrics", r"^pg_up 1$")
    answered(exporter, 9187, "/metrics", r"^pg_settings_max_connections")


def compose_entrypoint(service: str) -> list[str]:
    """compose.monitoring.yaml's entrypoint of `service`, as compose hands it to Docker ($$ is
    compose's escape of $)."""
    compose = yaml.safe_load((REPO / "compose.monitoring.yaml").read_text())
    return [part.replace("$$", "$") for part in compose["services"][service]["entrypoint"]]


def test_the_redis_exporter_reads_a_json_password_file_and_a_lists_length(
    containers, redis_exporter_image, redis_image, tmp_path
):
    """With compose.monitoring.yaml's own entrypoint: a shell writes the password map from
    the secret file, then the exporter reads Redis and the length of the list `celery` in
    database 0."""
    network = containers.network()
    redis = containers.run(
        redis_image, "redis-server", "--requirepass", PASSWORD,
        options=["--network", network, "--network-alias", "redis"],
    )  # fmt: skip
    redis.wait_for_log(r"Ready to accept connections")
    redis.exec("redis-cli", "rpush", "celery", "a", "b", "c", env={"REDISCLI_AUTH": PASSWORD})
    secret = tmp_path / "redis_password"
    secret.write_text(PASSWORD)
    secret.chmod(0o444)
    shell, *arguments = compose_entrypoint("redis-exporter")
    exporter = containers.run(
        redis_exporter_image, *arguments,
        env={"REDIS_HOST": "redis", "REDIS_PASSWORD_FILE": "/run/secrets/redis_password"},
        options=[
            *HARDENED, "--entrypoint", shell, "--tmpfs", "/tmp", "--network", network,
            "--volume", f"{secret}:/run/secrets/redis_password:ro",
            "--publish", "127.0.0.1::9121",
        ],
    )  # fmt: skip
    answered(exporter, 9121, "/metrics", r"^redis_up 1$")
    answered(exporter, 9121, "/metrics", r'^redis_key_size\{db="db0",key="celery"\} 3$')


def test_the_nginx_exporter_reads_stub_status(containers, nginx_exporter_image, nginx_image):
    network = containers.network()
    status = "server { listen 8081; location = /stub_status { stub_status; } }"
    nginx = containers.run(
        nginx_image, "sh", "-c",
        f"echo '{status}' >/etc/nginx/conf.d/status.conf && exec nginx -g 'daemon off;'",
        options=["--network", network, "--network-alias", "nginx"],
    )  # fmt: skip
    nginx.wait_for_log(r"start worker process")
    exporter = containers.run(
        nginx_exporter_image, "--nginx.scrape-uri=http://nginx:8081/stub_status",
        options=[*HARDENED, "--network", network, "--publish", "127.0.0.1::9113"],
    )  # fmt: skip
    body = answered(exporter, 9113, "/metrics", r"^nginx_up 1$")
    assert re.search(r"^nginx_connections_active \d+$", body, re.M), body
