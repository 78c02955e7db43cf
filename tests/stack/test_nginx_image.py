"""The nginx image on its own: how it turns the environment into configuration."""

import json
import re
import subprocess

import pytest

from tests.harness import REPO
from tests.harness.docker import build_image
from tests.harness.site import active_release
from tests.harness.tls import self_signed_certificate

TAG = "catcollector-test/nginx:latest"
BASE_ENV = {"DJANGO_ALLOWED_HOSTS": "cats.example.com", "UPLOAD_MAX_MB": "10"}
STARTED = r"start worker process"
# These runs have no web container: a Host nginx accepts is proxied and gets 502, an unknown
# one is dropped (curl: "Empty reply from server", exit 52).
MATCHED, DROPPED = "502", "000"


# How every test runs the image: compose's read-only root and tmpfs mounts, and a site volume
# with this checkout's templates as the active release (filled in by the nginx_image fixture).
RUN_OPTIONS = [
    "--read-only", "--tmpfs", "/run/nginx:uid=101,gid=101",
    "--tmpfs", "/var/cache/nginx:uid=101,gid=101",
]  # fmt: skip


@pytest.fixture(scope="module")
def nginx_image(tmp_path_factory) -> str:
    site = active_release(tmp_path_factory.mktemp("nginx-site") / "site")
    if "--volume" not in RUN_OPTIONS:
        RUN_OPTIONS.extend(["--volume", f"{site}:/srv/site:ro"])
    build_image(REPO / "nginx", TAG)
    return TAG


def run_nginx(containers, image, env, options=()):
    return containers.run_once(image, env=env, options=[*RUN_OPTIONS, *options])


def status_for_host(container, host: str, path: str = "/", scheme: str = "http") -> str:
    port = 8443 if scheme == "https" else 8080
    return container.exec(
        "curl", "--silent", "--insecure", "--output", "/dev/null", "--write-out", "%{http_code}",
        "--header", f"Host: {host}", f"{scheme}://127.0.0.1:{port}{path}", check=False,
    ).stdout  # fmt: skip


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DJANGO_ALLOWED_HOSTS": ""}, "error: DJANGO_ALLOWED_HOSTS is not set"),
        (
            {"DJANGO_ALLOWED_HOSTS": "https://cats.example.com"},
            "error: DJANGO_ALLOWED_HOSTS entry 'https://cats.example.com' is not a host name",
        ),
        (
            {"NGINX_TRUSTED_PROXIES": "10.0.0.0/33"},
            "error: NGINX_TRUSTED_PROXIES entry '10.0.0.0/33' is not an IP address or network",
        ),
        (
            {"NGINX_TRUSTED_PROXIES": "10.0.0.0/8,lb.example.com"},
            "error: NGINX_TRUSTED_PROXIES entry 'lb.example.com' is not an IP address",
        ),
        (
            {"NGINX_TRUSTED_PROXIES": "300.1.1.1"},
            "error: NGINX_TRUSTED_PROXIES entry '300.1.1.1' is not an IP address",
        ),
        ({"UPLOAD_MAX_MB": "ten"}, "error: UPLOAD_MAX_MB='ten' is not a whole number"),
        ({"UPLOAD_MAX_MB": "0"}, "error: UPLOAD_MAX_MB=0 is out of range; use a value from 1"),
        (
            {"UPLOAD_MAX_MB": "101"},
            "error: UPLOAD_MAX_MB=101 is out of range; use a value from 1 to 100",
        ),
        ({"NGINX_RATE_LIMIT": "fast"}, "error: NGINX_RATE_LIMIT='fast' is not a whole number"),
        (
            {"NGINX_CONTENT_SECURITY_POLICY": "default-src 'self' $x"},
            "error: NGINX_CONTENT_SECURITY_POLICY must not contain",
        ),
        (
            {"DJANGO_SECURE_HSTS_SECONDS": "1y"},
            "error: DJANGO_SECURE_HSTS_SECONDS='1y' is not a whole number",
        ),
        (
            {"DJANGO_SECURE_HSTS_SECONDS": "63072001"},
            "error: DJANGO_SECURE_HSTS_SECONDS=63072001 is out of range; use a value from 0",
        ),
        (
            {"DJANGO_SECURE_HSTS_PRELOAD": "maybe"},
            "error: DJANGO_SECURE_HSTS_PRELOAD='maybe' is not a boolean; use one of true/false",
        ),
        (
            {"NGINX_UPSTREAM_HOST": "web:8000"},
            "error: NGINX_UPSTREAM_HOST='web:8000' is not a host name",
        ),
    ],
)
def test_bad_configuration_stops_with_one_line(containers, nginx_image, env, message):
    result = run_nginx(containers, nginx_image, {**BASE_ENV, **env})
    assert result.returncode == 3
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(message), errors[0]
    assert "[emerg]" not in result.stderr


def test_a_certificate_without_its_key_is_refused(containers, nginx_image, tmp_path):
    (tmp_path / "tls.crt").write_text("not really a certificate\n")
    tmp_path.chmod(0o755)
    result = run_nginx(
        containers, nginx_image, BASE_ENV, ["--volume", f"{tmp_path}:/etc/nginx/tls:ro"]
    )
    assert result.returncode == 3
    assert "error: /etc/nginx/tls/tls.key is missing or not readable by UID 101" in result.stderr


def test_server_names_follow_django_allowed_hosts(containers, nginx_image):
    nginx = containers.run(
        nginx_image,
        env={**BASE_ENV, "DJANGO_ALLOWED_HOSTS": "cats.example.com, .example.org,[::1]"},
        options=RUN_OPTIONS,
    )
    nginx.wait_for_log(STARTED)
    expected = {
        "cats.example.com": MATCHED,
        "CATS.Example.com": MATCHED,
        "cats.example.com:8080": MATCHED,
        "example.org": MATCHED,
        "www.example.org": MATCHED,
        "[::1]": MATCHED,
        "badexample.org": DROPPED,
        "example.com": DROPPED,
        "10.0.0.1": DROPPED,
    }
    assert {host: status_for_host(nginx, host) for host in expected} == expected
    # The probes answer every Host; nginx's own needs no web at all.
    assert status_for_host(nginx, "10.0.0.1", "/nginx-healthz") == "200"
    assert status_for_host(nginx, "10.0.0.1", "/healthz") == MATCHED


def test_any_host_when_django_allows_any(containers, nginx_image):
    nginx = containers.run(
        nginx_image, env={**BASE_ENV, "DJANGO_ALLOWED_HOSTS": "*"}, options=RUN_OPTIONS
    )
    nginx.wait_for_log(STARTED)
    assert status_for_host(nginx, "anything.example.net") == MATCHED


def test_tls_listener_switched_on_by_a_mounted_certificate(containers, nginx_image, tmp_path):
    self_signed_certificate(tmp_path, host="cats.example.com")
    nginx = containers.run(
        nginx_image,
        env=BASE_ENV,
        options=[*RUN_OPTIONS, "--volume", f"{tmp_path}:/etc/nginx/tls:ro"],
    )
    nginx.wait_for_log(STARTED)
    # A load balancer probing the VM's address sends no SNI: the default server answers.
    assert status_for_host(nginx, "10.0.0.1", "/nginx-healthz", scheme="https") == "200"
    assert status_for_host(nginx, "cats.example.com", scheme="https") == MATCHED
    assert status_for_host(nginx, "unknown.example", scheme="https") == DROPPED
    assert status_for_host(nginx, "cats.example.com") == MATCHED


def access_log_addresses(container) -> list[str]:
    return [
        json.loads(line)["remote_addr"]
        for line in container.logs().splitlines()
        if line.startswith('{"time"')
    ]


@pytest.mark.parametrize(
    ("trusted", "logged"),
    [("127.0.0.1", "198.51.100.4"), ("10.0.0.0/8,127.0.0.0/8", "198.51.100.4"),
     ("", "127.0.0.1"), ("none", "127.0.0.1"), ("10.0.0.0/8", "127.0.0.1")],
)  # fmt: skip
def test_only_the_named_proxies_are_believed(containers, nginx_image, trusted, logged):
    """The client's address comes from X-Forwarded-For only when the peer (loopback here) is in
    NGINX_TRUSTED_PROXIES; unset, no one is believed, loopback and private ranges included."""
    nginx = containers.run(
        nginx_image,
        env={**BASE_ENV, "NGINX_TRUSTED_PROXIES": trusted},
        options=RUN_OPTIONS,
    )
    nginx.wait_for_log(STARTED)
    nginx.exec(
        "curl", "--silent", "--output", "/dev/null", "--header", "Host: cats.example.com",
        "--header", "X-Forwarded-For: 198.51.100.4", "http://127.0.0.1:8080/api/",
    )  # fmt: skip
    assert access_log_addresses(nginx) == [logged]


def nginx_t(containers, image, env, options=()) -> subprocess.CompletedProcess[str]:
    """The configuration nginx renders from `env` at start (`nginx -T`), and what the start
    scripts said on stderr."""
    return containers.run_once(
        image, "/docker-entrypoint.sh", "nginx", "-T",
        env=env, options=[*RUN_OPTIONS, "--entrypoint", "", *options],
    )  # fmt: skip


def test_upload_limit_defaults_to_djangos_default(containers, nginx_image):
    """Unset (as compose leaves it when .env does not set it), nginx takes Django's default of
    10 MB, plus the 1 MB for the form around the photo."""
    env = {k: v for k, v in BASE_ENV.items() if k != "UPLOAD_MAX_MB"}
    result = nginx_t(containers, nginx_image, env)
    assert result.returncode == 0, result.stderr
    assert "client_max_body_size 11m;" in result.stdout
    result = nginx_t(containers, nginx_image, {**env, "UPLOAD_MAX_MB": "100"})
    assert "client_max_body_size 101m;" in result.stdout


@pytest.mark.parametrize(
    ("env", "header"),
    [
        ({}, "max-age=31536000"),
        ({"DJANGO_SECURE_HSTS_SECONDS": "0", "DJANGO_SECURE_HSTS_PRELOAD": "true"}, ""),
        (
            {
                "DJANGO_SECURE_HSTS_SECONDS": "63072000",
                "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": " Yes",
                "DJANGO_SECURE_HSTS_PRELOAD": "ON",
            },
            "max-age=63072000; includeSubDomains; preload",
        ),
        ({"DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "0"}, "max-age=31536000"),
    ],
)
def test_hsts_is_written_as_django_writes_it(containers, nginx_image, env, header):
    """Django's defaults, words and format (SecurityMiddleware); 0 seconds: no header at all.
    tests/stack/test_tls.py compares the header with Django's own in a running stack."""
    result = nginx_t(containers, nginx_image, {**BASE_ENV, **env})
    assert result.returncode == 0, result.stderr
    assert f'"https:" "{header}";' in result.stdout


@pytest.mark.parametrize(("cpus", "workers"), [("1", 1), ("1.5", 2), ("", 2)])
def test_one_worker_per_cpu_of_the_container(containers, nginx_image, cpus, workers):
    """The CPU quota counts, not the host's CPUs (nproc is the host's 2 here), bounded at 4."""
    options = ["--cpus", cpus] if cpus else []
    nginx = containers.run(nginx_image, env=BASE_ENV, options=[*RUN_OPTIONS, *options])
    nginx.wait_for_log(STARTED)
    assert f"worker_processes {workers};" in nginx.exec("nginx", "-T").stdout
    running = nginx.exec("sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").stdout
    assert running.count("nginx: worker process") == workers, running


def test_upstream_is_the_active_release_unless_a_host_is_named(containers, nginx_image):
    """compose: the active release's alias (tests.harness.site's release is `test`); a swarm
    stack names its web service instead (stack.yaml)."""
    result = nginx_t(containers, nginx_image, BASE_ENV)
    assert result.returncode == 0, result.stderr
    assert re.findall(r"^\s*server (\S+) resolve\b", result.stdout, re.MULTILINE) == [
        "web-test:8000"
    ]
    result = nginx_t(containers, nginx_image, {**BASE_ENV, "NGINX_UPSTREAM_HOST": "web"})
    assert result.returncode == 0, result.stderr
    assert re.findall(r"^\s*server (\S+) resolve\b", result.stdout, re.MULTILINE) == ["web:8000"]


def trust_notices(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if "NGINX_TRUSTED_PROXIES" in line]


def test_every_start_says_whom_it_believes(containers, nginx_image):
    """Unset, `none`, or a list: each start names it, so a trust decision is never silent."""
    [unset] = trust_notices(nginx_t(containers, nginx_image, BASE_ENV))
    assert "believed from no one (NGINX_TRUSTED_PROXIES is not set)" in unset
    result = nginx_t(containers, nginx_image, {**BASE_ENV, "NGINX_TRUSTED_PROXIES": "none"})
    assert result.returncode == 0, result.stderr
    [none] = trust_notices(result)
    assert "believed from no one (NGINX_TRUSTED_PROXIES=none)" in none
    result = nginx_t(containers, nginx_image, {**BASE_ENV, "NGINX_TRUSTED_PROXIES": "10.0.1.0/24"})
    assert result.returncode == 0, result.stderr
    [named] = trust_notices(result)
    assert named.endswith("believed from NGINX_TRUSTED_PROXIES=10.0.1.0/24 only")
