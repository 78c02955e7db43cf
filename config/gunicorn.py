"""gunicorn's configuration, from GUNICORN_* variables (.env.example; docs/image.md, gunicorn).

The image's command loads it (`gunicorn --config python:config.gunicorn`), and the entrypoint
runs it first on its own (`python -m config.gunicorn`): that checks every GUNICORN_* variable
and Django's settings, so bad configuration is one `error: ...` line and exit status 3 before
any waiting for the database, and never a loop of workers failing to boot.

GUNICORN_MODE picks the server: wsgi (sync workers, or gthread with GUNICORN_THREADS above 1,
running config.wsgi; the default) or asgi (uvicorn through gunicorn: config.uvicorn_worker,
running config.asgi). Both write the same JSON access log (config.gunicorn_logging).
"""

import gc
import ipaddress
import os

from django.conf import settings
from django.db import connections
from psycopg_pool import PoolTimeout

from config import gunicorn_logging, metrics, metrics_files
from config.container import SERVED_BY, attached_networks, gunicorn_workers
from config.env import Env
from config.errors import ConfigurationError, exit_on_configuration_error
from config.pools import close_pools
from config.preflight import load_for_serving

MODES = {
    # GUNICORN_MODE (also the interface config.preflight checks): (application, worker class);
    # wsgi's is sync, or gthread with GUNICORN_THREADS above 1 (below).
    "wsgi": ("config.wsgi:application", "sync"),
    "asgi": ("config.asgi:application", "config.uvicorn_worker.JsonUvicornWorker"),
}
# nginx's request limits (nginx/templates/site.conf.template, "Request size"): the home of the
# stack's limits. gunicorn's own below follow them, so whatever nginx passes on, gunicorn
# parses, and a client never gets gunicorn's error page (which names the server and its
# limits, and is logged without a request id). tests/stack/test_site.py compares them with
# what nginx runs.
NGINX_HEADER_BUFFERS = 4  # large_client_header_buffers 4 8k
NGINX_HEADER_BUFFER_BYTES = 8 * 1024
NGINX_MAX_HEADERS = 1000  # max_headers
# Headers nginx may send gunicorn beyond the client's: Host, X-Forwarded-For, X-Forwarded-Proto,
# X-Request-ID (proxy_set_header, replacing a client's own) and Content-Length.
NGINX_ADDED_HEADERS = 5


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


def post_worker_init(worker) -> None:
    """Count the worker's threads into gunicorn's capacity (wsgi only: uvicorn's requests have
    no fixed number; config.metrics).

    Open the database pool and wait (DB_POOL_WAIT_S) for its first connection before serving,
    so the worker's first requests do not all wait for one at once (see max_waiting below).
    A database that does not answer is the requests' business: the worker serves anyway
    (liveness; readiness answers 503)."""
    if _mode == "wsgi":
        metrics.THREADS.set(worker.cfg.threads)
    if settings.DB_CONNECTIONS != "pool":
        return
    database = connections["default"]
    try:
        database.pool.open(wait=True, timeout=settings.DB_POOL_WAIT_S)
    except PoolTimeout:
        # psycopg_pool closes a pool whose wait timed out, for good: drop it, and the first
        # request opens a new one (tests/faults/test_outages.py replaces workers mid-outage).
        database.close_pool()


def when_ready(server) -> None:
    """Everything the master holds (Django, preloaded: about 70,000 objects) moves to the
    collector's permanent generation before the first fork. A worker's full collections then
    scan only its own objects: 3 to 5 ms instead of 26 to 150 ms under load, measured, and
    they no longer write to, and so copy, the pages the workers share with the master.
    Before that, a preloaded master does the work each worker would repeat on its first
    requests (config.warmup), so a worker replaced after max_requests starts warm."""
    if server.cfg.preload_app:
        from config.warmup import warm_up  # noqa: PLC0415 (needs the app loaded)

        warm_up()
    gc.collect()
    gc.freeze()


def pre_fork(server, worker) -> None:
    """The same for what the master allocated since (cheap: no collection)."""
    gc.freeze()


def child_exit(server, worker) -> None:
    """In the master, once a worker is reaped and before its successor is forked: the dead
    worker's metrics join the archives (config.metrics_files), so the files stay few."""
    folder = metrics_files.directory()
    if folder is not None:
        metrics_files.worker_exited(folder, worker.pid)


def worker_exit(server, worker) -> None:
    """A worker's pool closes before gunicorn starts its successor (config.pools): a container
    stopped meanwhile would otherwise answer 502 while it lingered."""
    close_pools()


# --- Settings gunicorn reads from this module ------------------------------------------------

with exit_on_configuration_error():
    _env = Env()
    _mode = _env.choice("GUNICORN_MODE", "wsgi", tuple(MODES))
    # One request at a time per process by default: gunicorn's sync worker accepts a
    # connection only when it is idle, so requests nginx sends wait in the kernel's one queue
    # for whichever worker frees first. gthread accepts whatever comes and queues it behind its
    # own busy threads while another worker may be idle: at 32 concurrent requests its p99 was
    # 3 to 5 times its median (docs/benchmarks.md). nginx buffers whole requests and responses,
    # so a slow client never holds a sync worker. More threads suit slow database queries.
    threads = _env.integer("GUNICORN_THREADS", 1, minimum=1, maximum=256)
    if _mode != "wsgi":
        threads = 1  # uvicorn's workers do not use threads (gunicorn warns otherwise)
    else:
        # The settings declare a wsgi worker's database pool from its threads (config.settings,
        # wsgi_threads): named before they load.
        os.environ[SERVED_BY] = f"wsgi {threads}"
    load_for_serving(_mode)
    wsgi_app, worker_class = MODES[_mode]

    # The image defines the port (ENV in the Dockerfile; EXPOSE and the health probe read it).
    _port = _env.raw("GUNICORN_PORT") or ""
    if not _port.isdigit():
        raise ConfigurationError(
            f"GUNICORN_PORT={_port!r} is not a port number; the image sets it (Dockerfile)"
        )
    # Every interface of the container; publishing (or not) decides who can reach it. The
    # metrics port (GUNICORN_METRICS_PORT, also the image's) is published nowhere, and nginx
    # never proxies to it: Prometheus reaches it over a network web shares (config.metrics).
    bind = [f"0.0.0.0:{_port}"]
    if settings.METRICS_PORT is not None:
        if int(_port) == settings.METRICS_PORT:
            raise ConfigurationError(
                f"GUNICORN_METRICS_PORT={settings.METRICS_PORT} is GUNICORN_PORT too; the "
                "metrics need a port of their own (the image sets both: Dockerfile)"
            )
        bind.append(f"0.0.0.0:{settings.METRICS_PORT}")

    # Two per CPU by default (config.container.default_workers).
    workers = gunicorn_workers(_env)
    if _mode == "wsgi" and threads > 1:
        worker_class = "gthread"
    _pooled = settings.DB_CONNECTIONS == "pool"
    if _mode == "wsgi" and _pooled and threads > settings.DB_POOL_MAX_SIZE:
        raise ConfigurationError(
            f"GUNICORN_THREADS={threads} is more than DJANGO_DB_POOL_MAX_SIZE="
            f"{settings.DB_POOL_MAX_SIZE}; threads would wait for database connections"
        )

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
    # 10,000: a replacement costs its worker about 60 ms of CPU (fork, pages copied again, a
    # new database connection), 0.06 ms on every request at 1,000 (1.99 against 2.05 ms per
    # request without replacement, tests/benchmarks/profile_web.py); at 200 requests a second
    # a worker still lives under a minute.
    max_requests = _env.integer("GUNICORN_MAX_REQUESTS", 10_000, minimum=0, maximum=10_000_000)
    max_requests_jitter = _env.integer(
        "GUNICORN_MAX_REQUESTS_JITTER", max_requests // 10, minimum=0, maximum=10_000_000
    )

    # Request limits: nginx's (above), never tighter. The request line nginx sends is as long
    # as the one it read over HTTP/1.1: one buffer less its CRLF, 8190 bytes, also gunicorn's
    # most (nginx refuses longer HTTP/2 lines itself). One header line: over HTTP/2 nginx joins
    # the cookie fields into one header, which may fill the whole head ("Name: value" and CRLF
    # around it). Header lines: the client's, and nginx's own.
    limit_request_line = NGINX_HEADER_BUFFER_BYTES - len("\r\n")
    limit_request_field_size = NGINX_HEADER_BUFFERS * NGINX_HEADER_BUFFER_BYTES + len(": \r\n")
    limit_request_fields = NGINX_MAX_HEADERS + NGINX_ADDED_HEADERS

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
    logger_class = gunicorn_logging.JsonAccessLogger
    logconfig_dict = gunicorn_logging.logconfig_dict(settings.LOG_LEVEL)
