"""init: the first start's settings, in .env, for one of the three ways visitors reach the site.

  --balancer CIDR   HTTPS ends at a load balancer at these addresses (production's usual way):
                    nginx believes its X-Forwarded-* headers and nobody else's
  --tls-dir DIR     HTTPS ends at nginx, with DIR's tls.crt and tls.key (compose.tls.yaml is
                    added to COMPOSE_FILE)
  --plain-http      a trial over plain HTTP, no TLS anywhere: no redirect to https://, cookies
                    not Secure (Django's deploy check warns, as it should)

with the host names the site answers to (--host, at least one). Asked for on a terminal when
not given. Only these settings are written; every other line of .env stays as it is. The last
lines say what to run next.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from tools.ops.console import Console, OpsError
from tools.ops.project import Project

from config.hosts import HOST_PATTERN

STEPS = ("check", "write")
TLS_OVERRIDE = "compose.tls.yaml"
TLS_FILES = ("tls.crt", "tls.key")
# Each way writes both, so changing ways (a trial, then production) leaves nothing behind.
PLAIN_HTTP = {"DJANGO_SECURE_SSL_REDIRECT": "false", "DJANGO_SECURE_COOKIES": "false"}
HTTPS = {"DJANGO_SECURE_SSL_REDIRECT": "true", "DJANGO_SECURE_COOKIES": "true"}
WAYS = {
    "1": "HTTPS at a load balancer in front of this VM",
    "2": "HTTPS at this VM (a certificate for nginx)",
    "3": "plain HTTP, a trial without TLS",
}


def ask(question: str) -> str:
    print(f"init: {question} ", end="", flush=True)
    answer = sys.stdin.readline()
    if not answer:
        raise OpsError("no answer (end of input)")
    return answer.strip()


def interview() -> tuple[list[str], str, str]:
    """(hosts, way, its detail) asked for on the terminal."""
    hosts = ask("Host name(s) the site answers to, comma-separated (e.g. cats.example.org):")
    for key, text in WAYS.items():
        print(f"  {key}. {text}", flush=True)
    way = ask("How do visitors reach it? [1/2/3]:")
    detail = ""
    if way == "1":
        detail = ask("The balancer's addresses, as networks (e.g. 10.0.1.0/24), comma-separated:")
    elif way == "2":
        detail = ask("The folder holding tls.crt and tls.key:")
    return [h.strip() for h in hosts.split(",") if h.strip()], way, detail


def check_hosts(hosts: list[str]) -> str:
    if not hosts:
        raise OpsError("name at least one host: --host cats.example.org")
    for host in hosts:
        if not HOST_PATTERN.fullmatch(host):
            raise OpsError(f"--host {host!r} is not a host name: a bare name or address, no "
                           "scheme, port or path (e.g. cats.example.org)")  # fmt: skip
    return ",".join(hosts)


def check_networks(text: str) -> str:
    networks = [part.strip() for part in text.split(",") if part.strip()]
    if not networks:
        raise OpsError("name the balancer's addresses: --balancer 10.0.1.0/24")
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise OpsError(f"--balancer {network!r} is not an address or network like "
                           "10.0.1.0/24") from None  # fmt: skip
    return ",".join(networks)


def check_tls_dir(project: Project, folder: str) -> Path:
    path = (project.directory / folder).resolve()
    missing = [name for name in TLS_FILES if not (path / name).is_file()]
    if missing:
        raise OpsError(f"--tls-dir {path}: no {' or '.join(missing)} there (nginx needs both: "
                       "the certificate with its chain, and its key)")  # fmt: skip
    return path


def init(
    project: Project,
    console: Console,
    *,
    hosts: list[str],
    balancer: str | None,
    tls_dir: str | None,
    plain_http: bool,
) -> str:
    with console.step("check"):
        ways = sum(bool(w) for w in (balancer, tls_dir, plain_http))
        if not hosts and ways == 0:
            if not sys.stdin.isatty():
                raise OpsError("say how the site is reached: ./ops init --host NAME and one of "
                               "--balancer CIDR, --tls-dir DIR, --plain-http")  # fmt: skip
            hosts, way, detail = interview()
            balancer = detail if way == "1" else None
            tls_dir = detail if way == "2" else None
            plain_http = way == "3"
            if way not in WAYS:
                raise OpsError(f"{way!r} is not one of {', '.join(WAYS)}")
        elif ways != 1:
            raise OpsError("choose one way visitors reach the site: --balancer CIDR, "
                           "--tls-dir DIR or --plain-http")  # fmt: skip
        settings = {"DJANGO_ALLOWED_HOSTS": check_hosts(hosts), **HTTPS}
        if balancer is not None:
            settings["NGINX_TRUSTED_PROXIES"] = check_networks(balancer)
        if tls_dir is not None:
            settings["NGINX_TLS_DIR"] = str(check_tls_dir(project, tls_dir))
            files = [project.relative(p) for p in project.compose_files()]
            if TLS_OVERRIDE not in files:
                files.append(TLS_OVERRIDE)
            settings["COMPOSE_FILE"] = ":".join(files)
            settings["NGINX_TRUSTED_PROXIES"] = "none"
        if plain_http:
            settings.update(PLAIN_HTTP)
            settings["NGINX_TRUSTED_PROXIES"] = "none"
    with console.step("write"):
        project.set_settings(settings)
        for name, value in settings.items():
            console.note(f"{name}={value}")
    scheme = "http" if plain_http else "https"
    if project.all_containers():
        console.say("next: docker compose up -d --wait   (recreates what the settings change)")
    else:
        console.say("next: ./ops deploy   (builds the images and starts the stack)")
        console.say("then: docker compose run --rm web python manage.py createsuperuser")
    console.say(f"then: open {scheme}://{hosts[0]}/admin/")
    return f"{len(settings)} setting(s) written to {project.env_file}"
