"""Where a gunicorn worker's CPU goes per request: a sampling profile under load, by part.

Run from the repo root with the test venv, wrk, py-spy (`.venv/bin/pip install py-spy`; not
locked: a diagnostic, not a test) and Debian's PostgreSQL server binaries; no Docker:

    .venv/bin/python -m tests.benchmarks.profile_web [--rounds 3] [--duration 10] \
        [--path /admin/login/] [--variant NAME "GUNICORN_THREADS=4 --worker-class gthread"]

gunicorn runs on loopback with the image's own configuration module (config.gunicorn: default
workers, JSON access log, the pool, preloading) against a throwaway cluster with 40 cats. A
variant adds NAME=VALUE variables and gunicorn options to it. wrk sends what nginx sends (Host,
X-Forwarded-For/-Proto, X-Request-ID) with 32 connections; py-spy samples the first worker
(the thread holding the GIL: Python running) and every sample is charged to the innermost
part of the request it was in (PARTS). CPU per request is read from /proc for the whole
gunicorn process tree over the same run. Django alone, the test client in a fresh process with
the same settings, is the floor. Rounds alternate the variants; the tables give medians.
Not collected by pytest.
"""

import argparse
import collections
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.db_connections import (
    CLOCK_TICKS,
    GUNICORN,
    cpu_seconds,
    host_cluster,
    wait_until_up,
)
from tests.benchmarks.wrk import parse_wrk
from tests.harness import REPO
from tests.harness.ports import free_port

REQUEST_ID = "0123456789abcdef0123456789abcdef"
NGINX_HEADERS = {
    "Host": "localhost",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "172.18.0.1",
    "X-Request-ID": REQUEST_ID,
}
# (part, pattern on one frame "function (file:line)"); a sample belongs to the part of its
# innermost matching frame, so a query run inside the session middleware counts as database.
PARTS = [
    ("gunicorn: accept, poll, threads", r"gunicorn/workers/|concurrent/futures|threading\.py"),
    ("gunicorn: HTTP parsing", r"gunicorn/http/(parser|message|unreader|body)\.py"),
    ("gunicorn: environ, response writing", r"gunicorn/http/wsgi\.py|gunicorn/util\.py"),
    ("access log (JSON line)", r"gunicorn_logging\.py|gunicorn/glogging\.py"),
    ("Django: request, handler, signals", r"django/core/handlers/|django/http/|dispatch/"),
    ("Django: URL resolving", r"django/urls/"),
    ("middleware: request id", r"config/middleware\.py"),
    ("middleware: health probes", r"app/health/middleware\.py"),
    ("middleware: security", r"django/middleware/security\.py"),
    ("middleware: whitenoise", r"whitenoise/"),
    ("middleware: sessions", r"django/contrib/sessions/"),
    ("middleware: common", r"django/middleware/common\.py"),
    ("middleware: csrf", r"django/middleware/csrf\.py"),
    ("middleware: auth", r"django/contrib/auth/middleware\.py"),
    ("middleware: messages", r"django/contrib/messages/"),
    ("middleware: clickjacking", r"django/middleware/clickjacking\.py"),
    ("view", r"app/cats/|django/views/|django/contrib/admin/|django/contrib/auth/(views|forms)"),
    ("templates", r"django/template/|django/templatetags/|django/forms/renderers"),
    ("database: Django ORM", r"django/db/models/|django/core/paginator"),
    ("database: connection, pool", r"django/db/(backends|utils|__init__)|psycopg_pool/"),
    ("database: psycopg, wire", r"psycopg/"),
    ("logging, json (other)", r"logging/__init__|json/|config/logging\.py"),
]
RATE = 250  # samples per second
COMPILED = [(name, re.compile(pattern)) for name, pattern in PARTS]


def part_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for name, pattern in reversed(COMPILED):
            if pattern.search(frame):
                return name
    return "other"


def breakdown(raw: str) -> collections.Counter:
    """py-spy's --format raw (collapsed stacks: frames;...;frames COUNT) by part."""
    parts: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            parts[part_of(stack.split(";"))] += int(count)
    return parts


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def django_env(cluster, scratch: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "POSTGRES_"))},
        **cluster.environ,
        "DJANGO_SECRET_KEY": "k" * 20 + "x" * 20 + "abcdefghij0123456789",
        "DJANGO_ALLOWED_HOSTS": "localhost",
        "DJANGO_STATIC_ROOT": str(scratch / "static"),
        "DJANGO_MEDIA_ROOT": str(scratch / "media"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "GUNICORN_PORT": "8000",
    }


def prepare(env: dict[str, str], cats: int) -> None:
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=REPO, env=env, check=True)
    subprocess.run([*manage, "collectstatic", "--noinput", "-v0"], cwd=REPO, env=env, check=True)
    script = (
        "from app.cats.models import Cat; Cat.objects.bulk_create("
        f"Cat(name=f'Cat {{i}}', breed='Tabby', age=i % 20) for i in range({cats}))"
    )
    subprocess.run([*manage, "shell", "-c", script], cwd=REPO, env=env, check=True)


IN_PROCESS = """
import json, os, sys, time
import django
django.setup()
from django.test import Client
client = Client(headers={k: v for k, v in json.loads(sys.argv[2]).items() if k != 'Host'},
                HTTP_HOST='localhost')
path, n = sys.argv[1], int(sys.argv[3])
for _ in range(200):
    assert client.get(path).status_code == 200
start = time.process_time()
for _ in range(n):
    client.get(path)
print(1000 * (time.process_time() - start) / n)
"""


def in_process_ms(env: dict[str, str], path: str, requests: int) -> float:
    """Django alone: the test client in a fresh process, CPU ms per request."""
    import json  # noqa: PLC0415

    quiet = {**env, "DJANGO_LOG_LEVEL": "WARNING"}
    run = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, path, json.dumps(NGINX_HEADERS), str(requests)],
        cwd=REPO,
        env=quiet,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(run.stdout.split()[-1])


def start_server(env: dict[str, str], variant: list[str], scratch: Path) -> tuple:
    """gunicorn with the image's configuration module; `variant` adds NAME=VALUE variables
    and gunicorn options (an option on the command line beats the module)."""
    port = free_port()
    overrides = dict(a.split("=", 1) for a in variant if re.match(r"[A-Z_]+=", a))
    options = [a for a in variant if not re.match(r"[A-Z_]+=", a)]
    server = subprocess.Popen(
        [GUNICORN, "--config", "python:config.gunicorn", "--bind", f"127.0.0.1:{port}", *options],
        cwd=REPO,
        env={**env, **overrides},
        stdout=subprocess.DEVNULL,
        stderr=(scratch / "gunicorn-stderr.log").open("a"),
    )
    wait_until_up(f"http://127.0.0.1:{port}/healthz", server)
    return server, port


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def profile_once(server, port: int, path: str, args, scratch: Path) -> dict:
    headers = [a for k, v in NGINX_HEADERS.items() for a in ("-H", f"{k}: {v}")]
    url = f"http://127.0.0.1:{port}{path}"
    wrk = ["wrk", "-t1", f"-c{args.connections}", "--latency", *headers, url]
    subprocess.run([*wrk[:3], "-d3s", *wrk[3:]], capture_output=True, check=True)
    workers = subprocess.run(
        ["pgrep", "-P", str(server.pid)], capture_output=True, text=True, check=True
    ).stdout.split()
    profile = scratch / "profile.txt"
    # py-spy reads the first worker's memory from outside (--nonblocking), so the CPU the
    # workers spend is the load's alone. --gil: only the thread holding the GIL is sampled
    # (Python running), not threads waiting for it, which would look busy otherwise.
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            workers[0],
            "--format",
            "raw",
            "--rate",
            str(RATE),
            "--output",
            str(profile),
            "--duration",
            str(args.duration),
            "--nonblocking",
            "--gil",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    before = cpu_seconds(server.pid)
    load = subprocess.run(
        [*wrk[:3], f"-d{args.duration}s", *wrk[3:]], capture_output=True, text=True, check=True
    )
    cpu = cpu_seconds(server.pid) - before
    spy.wait(timeout=60)
    result = parse_wrk(load.stdout)
    text = profile.read_text() if profile.exists() else ""
    return {**result, "cpu_ms": 1000 * cpu / result["requests"], "profile": text}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--path", action="append", help="paths to load (repeatable)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--variant", nargs=2, action="append", metavar=("NAME", "SETTINGS"),
        help='e.g. sync "GUNICORN_THREADS=1 --worker-class sync"; default: the image\'s',
    )  # fmt: skip
    parser.add_argument("--top", type=int, default=0, help="also print the N hottest frames")
    args = parser.parse_args()
    paths = args.path or ["/admin/login/", "/", "/api/cats/?page_size=20"]
    variants = {name: shlex.split(settings) for name, settings in args.variant or [("image", "")]}

    cluster = host_cluster()
    scratch = Path(tempfile.mkdtemp(prefix="cats-profile-"))
    env = django_env(cluster, scratch)
    results: dict = collections.defaultdict(list)
    floors: dict = collections.defaultdict(list)
    try:
        prepare(env, 40)
        for round_number in range(args.rounds):
            order = list(variants)
            order = order[round_number % len(order) :] + order[: round_number % len(order)]
            for path in paths:
                floors[path].append(in_process_ms(env, path, 1000))
                for name in order:
                    server, port = start_server(env, variants[name], scratch)
                    try:
                        result = profile_once(server, port, path, args, scratch)
                    finally:
                        stop_server(server)
                    results[name, path].append(result)
                    print(
                        f"round {round_number + 1} {name:12} {path:26} {result['cpu_ms']:.2f} "
                        f"ms/req (Django {floors[path][-1]:.2f}) {result['rps']:.0f} req/s "
                        f"p50 {result['p50']:.1f} p99 {result['p99']:.1f}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    report(results, floors, variants, paths, args)


def report(results, floors, variants, paths, args) -> None:
    median = statistics.median
    print(
        f"\nwrk -c{args.connections}, {args.duration} s x {args.rounds} rounds, medians; "
        "parts: share of py-spy's samples of the GIL holder, times the measured CPU\n"
    )
    print("| path | variant | CPU ms/req | / Django | req/s | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for path in paths:
        floor = median(floors[path])
        print(f"| `{path}` | Django in-process (test client) | {floor:.2f} | 1.00 | | | |")
        for name in variants:
            runs = results[name, path]
            cpu = median(r["cpu_ms"] for r in runs)
            print(
                f"| `{path}` | {name} | {cpu:.2f} | {cpu / floor:.2f} | "
                f"{median(r['rps'] for r in runs):.0f} | {median(r['p50'] for r in runs):.1f} | "
                f"{median(r['p99'] for r in runs):.1f} |"
            )
    for path in paths:
        print(f"\n`{path}`, ms of CPU per request by part\n")
        print("| part | " + " | ".join(variants) + " |")
        print("|---|" + "---:|" * len(variants))
        tables = {}
        for name in variants:
            runs = results[name, path]
            parts = sum((breakdown(r["profile"]) for r in runs), collections.Counter())
            total = sum(parts.values()) or 1
            cpu = median(r["cpu_ms"] for r in runs)
            tables[name] = {part: cpu * count / total for part, count in parts.items()}
        for part in [p for p, _ in PARTS] + ["other"]:
            cells = [f"{tables[n].get(part, 0):.3f}" for n in variants]
            print(f"| {part} | " + " | ".join(cells) + " |")
        if args.top:
            for name in variants:
                leaves: collections.Counter = collections.Counter()
                for run in results[name, path]:
                    for line in run["profile"].splitlines():
                        stack, _, count = line.rpartition(" ")
                        if count.isdigit():
                            leaves[stack.split(";")[-1]] += int(count)
                total = sum(leaves.values()) or 1
                print(f"\nhottest frames, {name}:")
                for frame, count in leaves.most_common(args.top):
                    print(f"    {100 * count / total:5.1f} %  {frame}")


if __name__ == "__main__":
    main()
