"""gunicorn's configuration, from GUNICORN_* variables (README: Image has the table).

Loaded with `gunicorn --config python:config.gunicorn` (the image's command). Django's
configuration is checked here, in the master, before any worker forks: bad configuration ends
gunicorn with one `error: ...` line and exit status 3 instead of a loop of failing workers.

GUNICORN_MODE picks the server:
  wsgi  gthread workers running config.wsgi (threads, the default)
  asgi  uvicorn through gunicorn (the uvicorn-worker package) running config.asgi
Both write the same JSON access log line (README: Image, Access log), carrying nginx's
request id.
"""

import datetime
import ipaddress
import logging
import math
import os
import time
from pathlib import Path
from typing import ClassVar

from django.conf import settings
from gunicorn.glogging import Logger
from uvicorn_worker import UvicornWorker

from config.env import Env
from config.errors import ConfigurationError, exit_on_configuration_error
from config.logging import JsonFormatter, clean_request_id
from config.preflight import exit_if_misconfigured

MODES = {
    # mode: (Django entry point, preflight interface)
    "wsgi": ("config.wsgi:application", "wsgi"),
    "asgi": ("config.asgi:application", "asgi"),
}
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Each worker measured about 60 MB resident (20 to 40 MB of it its own with preloading), up to
# 9 threads under wsgi and 12 under asgi, and up to GUNICORN_THREADS database connections. At 8
# workers that still fits compose's web limits (mem_limit 1g with a full 256 MB /tmp, even
# without preloading; pids_limit 256) and PostgreSQL's 100 connections with room for a second
# replica during an update. Bigger machines: set GUNICORN_WORKERS and those limits together.
MAX_DEFAULT_WORKERS = 8


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """CPUs this container may use: its CPU quota (`docker run --cpus`, compose `cpus:`),
    else the CPUs it may be scheduled on. os.cpu_count() would report the whole host."""
    schedulable = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is None:
        return schedulable
    return max(1, min(schedulable, math.ceil(quota)))


def default_workers(cpus: int) -> int:
    """Two processes per CPU: one process runs Python on at most one CPU (the GIL), and a
    second keeps that CPU busy while the first waits on the database. Never fewer than two,
    so a worker being recycled (max_requests) leaves another serving; never more than
    MAX_DEFAULT_WORKERS."""
    return min(2 * cpus, MAX_DEFAULT_WORKERS)


def cgroup_cpu_quota(cgroup_root: Path) -> float | None:
    """The CFS quota in CPUs, or None when unlimited or unreadable (cgroup v2, then v1)."""
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup_root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def attached_networks(proc_net: Path = Path("/proc/net")) -> list[str]:
    """The subnets this container's interfaces sit on (its directly connected routes).

    gunicorn's port is published to no one, so only containers on these networks (nginx)
    reach it: by default they are the hops whose X-Forwarded-For the access log believes.
    """
    networks = _connected_ipv4(proc_net) + _connected_ipv6(proc_net)
    return sorted({str(network) for network in networks})


def _connected_ipv4(proc_net: Path) -> list[ipaddress.IPv4Network]:
    """Routes without a gateway in /proc/net/route, the default route left out."""
    try:
        lines = (proc_net / "route").read_text().splitlines()[1:]
    except OSError:
        return []
    networks = []
    for line in lines:
        fields = line.split()
        # Addresses are printed as little-endian hex numbers.
        destination, gateway, mask = (int(fields[i], 16).to_bytes(4, "little") for i in (1, 2, 7))
        prefix = bin(int.from_bytes(mask)).count("1")
        if not any(gateway) and prefix:
            networks.append(ipaddress.IPv4Network((destination, prefix)))
    return networks


def _connected_ipv6(proc_net: Path) -> list[ipaddress.IPv6Network]:
    """The same from /proc/net/ipv6_route, without link-local, multicast and host routes."""
    try:
        lines = (proc_net / "ipv6_route").read_text().splitlines()
    except OSError:
        return []
    networks = []
    for line in lines:
        destination, prefix, _source, _source_prefix, next_hop = line.split()[:5]
        network = ipaddress.IPv6Network((int(destination, 16), int(prefix, 16)))
        if int(next_hop, 16) or not 0 < network.prefixlen < 128:
            continue
        if not (network.is_link_local or network.is_multicast):
            networks.append(network)
    return networks


def trusted_proxies(env: Env) -> str:
    value = env.strings("GUNICORN_FORWARDED_ALLOW_IPS")
    if not value:
        return ",".join(["127.0.0.1", "::1", *attached_networks()])
    for entry in value:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry)
        except ValueError:
            raise ConfigurationError(
                f"GUNICORN_FORWARDED_ALLOW_IPS entry {entry!r} is not an IP address or network "
                "like 172.18.0.0/16"
            ) from None
    return ",".join(value)


# --- Access log ------------------------------------------------------------------------------


class JsonAccessLogger(Logger):
    """gunicorn's logger with one JSON object per request (README: Image, Access log).

    gthread calls access() itself; the uvicorn worker below calls it from a small ASGI
    wrapper, so both modes write the same keys.
    """

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status
        if isinstance(status, str):
            status = int(status.split(None, 1)[0])
        method = environ.get("REQUEST_METHOD", "-")
        path = environ.get("PATH_INFO", "-")
        self.access_log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "request_id": clean_request_id(environ.get("HTTP_X_REQUEST_ID")),
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(
                    request_time.seconds * 1000 + request_time.microseconds / 1000, 1
                ),
                "remote_addr": self.client_address(environ),
                "bytes": getattr(resp, "sent", None) or 0,
            },
        )

    def client_address(self, environ: dict) -> str:
        """The client as the trusted proxy reports it (the last X-Forwarded-For hop, which
        nginx appends), else the peer itself."""
        peer = environ.get("REMOTE_ADDR", "-")
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded and self._trusts(peer):
            return forwarded.rsplit(",", 1)[-1].strip()
        return peer

    def _trusts(self, peer: str) -> bool:
        if "*" in self.cfg.forwarded_allow_ips:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.cfg.forwarded_allow_networks())


class PlainMessages(logging.Filter):
    """uvicorn attaches an ANSI-coloured copy of its messages; keep it out of the JSON."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


class _Response:
    status = 500  # what uvicorn answers when the application fails before responding
    sent = 0
    headers = ()


class AccessLogMiddleware:
    """Measures each HTTP request for JsonAccessLogger (uvicorn's own access log has no
    duration, size or request headers)."""

    def __init__(self, app, log: JsonAccessLogger) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        response = _Response()

        async def measured_send(message) -> None:
            if message["type"] == "http.response.start":
                response.status = message["status"]
            elif message["type"] == "http.response.body":
                response.sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, measured_send)
        finally:
            elapsed = datetime.timedelta(seconds=time.monotonic() - started)
            self.log.access(response, None, self.environ(scope), elapsed)

    @staticmethod
    def environ(scope) -> dict:
        environ = {
            "REQUEST_METHOD": scope["method"],
            "PATH_INFO": scope["path"],
            "REMOTE_ADDR": scope["client"][0] if scope.get("client") else "-",
        }
        for name, value in scope["headers"]:
            # As gunicorn does: X_Request_ID must not pass for X-Request-ID.
            if b"_" not in name:
                key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
                environ[key] = value.decode("latin-1")
        return environ


class JsonUvicornWorker(UvicornWorker):
    # Django has no lifespan handlers; our wrapper writes the access log instead of uvicorn.
    # No proxy headers: uvicorn would rewrite the scheme and client address Django sees, which
    # gthread does not; Django alone decides the scheme (DJANGO_TRUST_X_FORWARDED_PROTO).
    CONFIG_KWARGS: ClassVar[dict] = {
        **UvicornWorker.CONFIG_KWARGS,
        "access_log": False,
        "lifespan": "off",
        "proxy_headers": False,
    }

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = AccessLogMiddleware(self.wsgi, self.log)


WORKER_CLASSES = {"wsgi": "gthread", "asgi": JsonUvicornWorker}


# --- Settings gunicorn reads from this module ------------------------------------------------

with exit_on_configuration_error():
    _env = Env()
    _mode = _env.choice("GUNICORN_MODE", "wsgi", tuple(MODES))
    wsgi_app, _interface = MODES[_mode]

exit_if_misconfigured(_interface)

with exit_on_configuration_error():
    worker_class = WORKER_CLASSES[_mode]
    # The port is defined once, by the image (ENV GUNICORN_PORT); its healthcheck reads it too.
    if _env.raw("GUNICORN_PORT") is None:
        raise ConfigurationError("GUNICORN_PORT is not set (the image sets it to 8000)")
    _port = _env.integer("GUNICORN_PORT", 0, minimum=1, maximum=65535)
    # Every interface of the container; publishing (or not) decides who can reach it.
    bind = [f"0.0.0.0:{_port}"]

    workers = _env.integer(
        "GUNICORN_WORKERS", default_workers(available_cpus()), minimum=1, maximum=256
    )
    threads = _env.integer("GUNICORN_THREADS", 4, minimum=1, maximum=256)
    pooled = settings.DB_CONNECTIONS == "pool"
    if _mode == "wsgi" and pooled and threads > settings.DB_POOL_MAX_SIZE:
        raise ConfigurationError(
            f"GUNICORN_THREADS={threads} is more than DJANGO_DB_POOL_MAX_SIZE="
            f"{settings.DB_POOL_MAX_SIZE}; threads would wait for database connections"
        )
    if _mode != "wsgi":
        threads = 1  # uvicorn's workers do not use threads (gunicorn warns otherwise)

    # Django is imported once, in the master, and workers fork from it: a replaced worker
    # (max_requests) serves at once instead of importing everything again, and the workers
    # share that memory (tests/benchmarks/preload.py). Django opens no database connection
    # at import. Off for apps that open connections or start threads when imported, and by
    # default with DEBUG on, because gunicorn's --reload cannot reload a preloaded app.
    preload_app = _env.boolean("GUNICORN_PRELOAD", default=not settings.DEBUG)

    # A request running longer than this is killed with its worker.
    timeout = _env.integer("GUNICORN_TIMEOUT", 30, minimum=1, maximum=3600)
    # On SIGTERM, requests in flight get this long to finish. Keep it below the time the
    # container is given to stop (compose stop_grace_period, `docker stop --time`).
    graceful_timeout = _env.integer("GUNICORN_GRACEFUL_TIMEOUT", 20, minimum=1, maximum=3600)
    # Longer than nginx keeps an idle upstream connection (60 s by default), so nginx, not
    # gunicorn, closes it: otherwise nginx may reuse a connection gunicorn is closing.
    keepalive = _env.integer("GUNICORN_KEEPALIVE", 75, minimum=1, maximum=3600)
    # Recycle workers now and then (slow leaks), staggered so they never restart together.
    max_requests = _env.integer("GUNICORN_MAX_REQUESTS", 1000, minimum=0, maximum=10_000_000)
    max_requests_jitter = _env.integer(
        "GUNICORN_MAX_REQUESTS_JITTER", max_requests // 10, minimum=0, maximum=10_000_000
    )

    # Django alone decides the scheme (SECURE_PROXY_SSL_HEADER, DJANGO_TRUST_X_FORWARDED_PROTO):
    # gunicorn reads no scheme header, so every mode hands Django the same request.
    secure_scheme_headers = {}
    # No SCRIPT_NAME/PATH_INFO from headers: the site is never mounted under a prefix.
    forwarder_headers = ""
    # Whose X-Forwarded-For the access log believes for remote_addr: the proxy's network.
    forwarded_allow_ips = trusted_proxies(_env)

    # Heartbeat files on tmpfs: the root filesystem may be read-only, and a disk-backed
    # directory can stall the heartbeat under I/O load.
    worker_tmp_dir = "/dev/shm"  # noqa: S108 (gunicorn makes its files there with mkstemp)
    # The control socket (gunicornc) defaults to $HOME, which is not writable here: off unless
    # given a path, which must be on a writable tmpfs (e.g. /tmp/gunicorn.ctl).
    _control_socket = _env.raw("GUNICORN_CONTROL_SOCKET")
    control_socket_disable = _control_socket is None
    if _control_socket is not None:
        control_socket = _control_socket

    proc_name = "catcollector"

    # JSON lines on stdout for gunicorn's own messages and the access log.
    accesslog = "-"
    loglevel = settings.LOG_LEVEL.lower()
    logger_class = JsonAccessLogger
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"plain": {"()": PlainMessages}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": ["plain"],
            },
        },
        "root": {"level": settings.LOG_LEVEL, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {
                "level": settings.LOG_LEVEL,
                "handlers": ["stdout"],
                "propagate": False,
            },
            "gunicorn.access": {"level": logging.INFO, "handlers": ["stdout"], "propagate": False},
        },
    }
