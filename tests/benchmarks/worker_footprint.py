"""What one gunicorn worker costs under load: memory, threads, and the whole container's use.

Run from the repo root, with the engine up and wrk installed:

    .venv/bin/python -m tests.benchmarks.worker_footprint [--workers 4 8] [--load 20]

The production image in each mode (wsgi, asgi) and worker count, read-only with a /tmp tmpfs as
compose runs it, against one PostgreSQL container holding 40 cats. wrk (16 connections) loads
`/api/cats/?page_size=20`; halfway through, every gunicorn worker's /proc is read inside the
container (VmRSS and Threads from status; USS, the pages no other process shares, from
smaps_rollup) and `docker stats` gives the container's memory and task count. These are the
numbers docs/operations.md, Sizing, and compose.yaml's mem_limit and pids_limit are set from.
"""

import argparse
import json
import secrets
import subprocess
import time

from tests.benchmarks.preload import network_with_database, wait_until_serving
from tests.harness import REPO
from tests.harness.containers import Containers
from tests.harness.docker import build_image, docker, run_id

IMAGE = "catcollector-bench/web:latest"
MODES = ("wsgi", "asgi")
PATH = "/api/cats/?page_size=20"
PASSWORD = secrets.token_urlsafe(16)
SEED = (
    "from app.cats.models import Cat\n"
    "Cat.objects.bulk_create([Cat(name=f'Cat {i}', breed='Tabby', age=i % 20) for i in range(40)])"
)
# Runs inside the container: one JSON object per gunicorn process.
PROC_READER = """
import json, os
def fields(path):
    with open(path) as f:
        return dict(line.split(':', 1) for line in f if ':' in line)
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            command = f.read().replace(b'\\0', b' ').decode()
        status, rollup = fields(f'/proc/{pid}/status'), fields(f'/proc/{pid}/smaps_rollup')
    except OSError:
        continue
    if 'gunicorn' not in command:
        continue
    kb = lambda d, k: int(d[k].split()[0])
    print(json.dumps({
        'pid': int(pid), 'ppid': kb(status, 'PPid'), 'threads': kb(status, 'Threads'),
        'rss_kb': kb(status, 'VmRSS'),
        'uss_kb': kb(rollup, 'Private_Clean') + kb(rollup, 'Private_Dirty'),
    }))
"""


def measure(containers: Containers, network: str, mode: str, workers: int, load_s: int) -> dict:
    web = containers.run(
        IMAGE,
        env={
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "POSTGRES_HOST": "db",
            "POSTGRES_PASSWORD": PASSWORD,
            "GUNICORN_MODE": mode,
            "GUNICORN_WORKERS": str(workers),
        },
        options=[
            "--network", network, "--publish", "127.0.0.1::8000",
            "--read-only", "--tmpfs", "/tmp",
        ],
    )  # fmt: skip
    port = int(docker("port", web.name, "8000/tcp").stdout.split(":")[-1])
    wait_until_serving(port)
    wrk = subprocess.Popen(
        ["wrk", "-t2", "-c16", f"-d{load_s}s", f"http://127.0.0.1:{port}{PATH}"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(load_s / 2)
        processes = [
            json.loads(line)
            for line in docker("exec", web.name, "python", "-c", PROC_READER).stdout.splitlines()
        ]
        stats = docker(
            "stats", "--no-stream", "--format", "{{.MemUsage}}|{{.PIDs}}", web.name
        ).stdout.strip()
    finally:
        wrk.wait()
    master = next(p for p in processes if p["ppid"] == 1)
    worker_list = [p for p in processes if p["ppid"] == master["pid"]]
    if len(worker_list) != workers:
        raise SystemExit(f"{mode}: expected {workers} workers, found {len(worker_list)}")
    memory, tasks = stats.split("|")
    web.stop()  # the next measurement runs alone
    return {
        "rss_mb": [p["rss_kb"] / 1024 for p in worker_list],
        "uss_mb": [p["uss_kb"] / 1024 for p in worker_list],
        "threads": [p["threads"] for p in worker_list],
        "container_memory": memory.split("/")[0].strip(),
        "container_tasks": int(tasks),
    }


def span(values: list[float]) -> str:
    return f"{min(values):.0f} to {max(values):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--load", type=int, default=20, help="seconds of wrk per container")
    args = parser.parse_args()

    build_image(REPO, IMAGE)
    containers = Containers(run_id(), "bench-footprint")
    try:
        network = network_with_database(containers, PASSWORD)
        seeded = containers.run_once(
            IMAGE, "sh", "-c",
            "python scripts/wait_for_db.py && python scripts/migrate.py"
            ' && python manage.py shell -c "$SEED"',
            env={
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
                "DJANGO_ALLOWED_HOSTS": "localhost",
                "POSTGRES_HOST": "db",
                "POSTGRES_PASSWORD": PASSWORD,
                "SEED": SEED,
            },
            options=["--network", network],
        )  # fmt: skip
        if seeded.returncode != 0:
            raise SystemExit(f"seeding the database failed: {seeded.stderr}")
        rows = [
            (mode, workers, measure(containers, network, mode, workers, args.load))
            for mode in MODES
            for workers in args.workers
        ]
    finally:
        containers.remove_all()

    print(f"wrk -t2 -c16 on `{PATH}`, read halfway through {args.load} s\n")
    print(
        "| mode | workers | RSS per worker (MB) | USS per worker (MB) | threads per worker "
        "| container memory | container tasks |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode, workers, result in rows:
        print(
            f"| {mode} | {workers} | {span(result['rss_mb'])} | {span(result['uss_mb'])} | "
            f"{span(result['threads'])} | {result['container_memory']} | "
            f"{result['container_tasks']} |"
        )


if __name__ == "__main__":
    main()
