"""Database connection handling under gunicorn: per-request vs persistent vs psycopg's pool.

Run from the repo root (needs wrk and Debian's PostgreSQL server binaries):

    .venv/bin/python -m tests.benchmarks.db_connections [--duration 10] [--rounds 3]

For each server mode (WSGI: gthread workers; ASGI: uvicorn workers through gunicorn) and each
DJANGO_DB_CONNECTIONS value it boots gunicorn on loopback against a throwaway cluster, drives
/api/cats/ (two queries per request) with wrk, and records throughput, latency, the CPU time
gunicorn and PostgreSQL spent per request (steadier than throughput on a shared machine), how
many PostgreSQL sessions were opened during the run, how many were still open at its end, and
how many connection attempts the server refused for exceeding max_connections (100).
Every round runs each configuration once, in a shuffled order, so that the machine's noise
spreads over all of them; the table reports medians. Not collected by pytest (the file name
does not start with test_).
"""

import argparse
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.benchmarks.wrk import parse_wrk
from tests.harness import REPO
from tests.harness.ports import free_port
from tests.harness.postgres import Cluster, HostCluster, PostgresUnavailable, host_binaries

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
WORKERS = 2
THREADS = 4
CONNECTIONS = 16
CATS = 100
SERVERS = {
    "wsgi-gthread": ["config.wsgi:application", "-k", "gthread", "--threads", str(THREADS)],
    # Django's own ASGI application: config.asgi refuses the persistent mode this measures.
    "asgi-uvicorn": [
        "django.core.asgi:get_asgi_application()",
        "-k",
        "uvicorn_worker.UvicornWorker",
    ],
}
DB_MODES = ("per-request", "persistent", "pool")
APP_ROLE = "bench_app"


def app_role(cluster: Cluster) -> dict[str, str]:
    """A login without superuser rights for the server under test, as in production.
    PostgreSQL keeps superuser_reserved_connections (3) out of its reach, so the benchmark's
    own queries still get in after a leaking configuration has taken every other slot."""
    password = secrets.token_urlsafe(24)
    cluster.psql(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{password}'")
    cluster.psql(f"GRANT CREATE ON SCHEMA public TO {APP_ROLE}")
    return {"POSTGRES_USER": APP_ROLE, "POSTGRES_PASSWORD": password}


def django_env(
    cluster: Cluster, scratch: Path, mode: str = "pool", role: dict[str, str] | None = None
) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "POSTGRES_"))},
        **cluster.environ,
        **(role or {}),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_STATIC_ROOT": str(scratch / "static"),
        "DJANGO_MEDIA_ROOT": str(scratch / "media"),
        "DJANGO_LOG_LEVEL": "WARNING",
        "DJANGO_DB_CONNECTIONS": mode,
    }


def seed(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=REPO, env=env, check=True
    )
    script = (
        "from app.cats.models import Cat; "
        f"Cat.objects.bulk_create(Cat(name=f'cat {{i}}', breed='tabby', age=i % 20, "
        f"description='x' * 200) for i in range({CATS}))"
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", script],
        cwd=REPO,
        env=env,
        check=True,
    )


def wait_until_up(url: str, server: subprocess.Popen, deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer {url} within {deadline}s")


def sessions(cluster: Cluster) -> tuple[int, int]:
    """(sessions ever opened, client sessions open now) for the benchmark database."""
    opened = cluster.psql("SELECT sessions FROM pg_stat_database WHERE datname = 'postgres'")
    open_now = cluster.psql(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = 'postgres' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    return int(opened), int(open_now)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root: int) -> float:
    """CPU time of a process tree: the root, its live descendants and the children it reaped."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            # Fields after the command name: state, ppid, ..., utime (11), stime (12),
            # cutime (13), cstime (14) when counted from state.
            stats[int(entry.name)] = text[text.rindex(")") + 2 :].split()
    tree = {root}
    while grown := {pid for pid, f in stats.items() if int(f[1]) in tree} - tree:
        tree |= grown
    ticks = sum(int(stats[pid][11]) + int(stats[pid][12]) for pid in tree if pid in stats)
    ticks += int(stats[root][13]) + int(stats[root][14])
    return ticks / CLOCK_TICKS


def measure(
    server: str, mode: str, cluster: Cluster, scratch: Path, *, duration: int, role: dict[str, str]
) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            GUNICORN,
            *SERVERS[server],
            "--workers",
            str(WORKERS),
            "--bind",
            f"127.0.0.1:{port}",
            "--no-control-socket",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=django_env(cluster, scratch, mode, role),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_up(f"{base}/healthz", process)
        url = f"{base}/api/cats/?page_size=20"
        subprocess.run(
            ["wrk", "-t2", "-c", str(CONNECTIONS), "-d2s", url], capture_output=True, check=True
        )
        opened_before, _ = sessions(cluster)
        log_offset = cluster.log.stat().st_size
        app_cpu, db_cpu = cpu_seconds(process.pid), cpu_seconds(cluster.pid)
        run = subprocess.run(
            ["wrk", "-t2", "-c", str(CONNECTIONS), f"-d{duration}s", "--latency", url],
            capture_output=True,
            text=True,
            check=True,
        )
        app_cpu, db_cpu = cpu_seconds(process.pid) - app_cpu, cpu_seconds(cluster.pid) - db_cpu
        opened_after, open_now = sessions(cluster)
        with cluster.log.open("rb") as log:
            log.seek(log_offset)
            refused = log.read().count(b"too many clients already")
        result = parse_wrk(run.stdout)
        return {
            **result,
            "app_ms": 1000 * app_cpu / result["requests"],
            "db_ms": 1000 * db_cpu / result["requests"],
            "opened": opened_after - opened_before,
            "open": open_now,
            "refused": refused,
        }
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def host_cluster() -> HostCluster:
    """The server's CPU time is read from its process: a cluster from the host's binaries."""
    binaries = host_binaries()
    if binaries is None:
        raise PostgresUnavailable("this benchmark needs Debian's postgresql server binaries")
    return HostCluster(binaries).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    cluster = host_cluster()
    scratch = Path(tempfile.mkdtemp(prefix="cats-bench-"))
    try:
        role = app_role(cluster)
        seed(django_env(cluster, scratch, role=role))
        configurations = [(server, mode) for server in SERVERS for mode in DB_MODES]
        results: dict[tuple[str, str], list[dict]] = {config: [] for config in configurations}
        shuffler = random.Random(0)  # noqa: S311 (an order, not a secret)
        for round_ in range(1, args.rounds + 1):
            for server, mode in shuffler.sample(configurations, len(configurations)):
                result = measure(server, mode, cluster, scratch, duration=args.duration, role=role)
                results[server, mode].append(result)
                print(f"round {round_} {server:13} {mode:12} {result}", file=sys.stderr)
    finally:
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    print(
        f"\n{WORKERS} workers (gthread: {THREADS} threads each), wrk {CONNECTIONS} connections, "
        f"{args.duration}s x {args.rounds} rounds, median per column\n"
    )
    print(
        "| server | DJANGO_DB_CONNECTIONS | req/s | p50 ms | p99 ms | gunicorn CPU ms/req | "
        "PostgreSQL CPU ms/req | HTTP errors | sessions opened per 1k requests | "
        "sessions open at end | refused: too many clients |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (server, mode), runs in results.items():

        def median(key: str, runs=runs) -> float:
            return statistics.median(run[key] for run in runs)

        print(
            f"| {server} | {mode} | {median('rps'):.0f} | {median('p50'):.1f} | "
            f"{median('p99'):.1f} | {median('app_ms'):.2f} | {median('db_ms'):.2f} | "
            f"{median('errors'):.0f} | {1000 * median('opened') / median('requests'):.1f} | "
            f"{median('open'):.0f} | "
            f"{median('refused'):.0f} |"
        )


if __name__ == "__main__":
    main()
