"""gunicorn's three server modes through the real stack: nginx -> gunicorn -> Django -> PostgreSQL.

Run from the repo root, with the engine up (tests/run starts it) and wrk installed:

    .venv/bin/python -m tests.benchmarks.server_modes [--duration 8] [--rounds 3]

One compose.yaml stack (project `bench-<random>`, nginx published on 127.0.0.1 only, always
taken down). Its web service is recreated in each GUNICORN_MODE in turn, round after round, so
the machine's noise falls on every mode alike; the database and its 40 cats are shared. wrk
plays the load balancer (X-Forwarded-Proto: https, 16 connections) against three paths. The
report gives the median of the rounds per mode and path, and each mode's throughput relative
to wsgi. nginx's rate limits are raised for the run (NGINX_RATE_LIMIT and friends).
"""

import argparse
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from tests.benchmarks.db_connections import parse_wrk
from tests.harness.docker import docker, free_port
from tests.stack.support import Stack, python_in_web, reconfigured, running_stack

MODES = ("wsgi", "asgi", "asgi-native")
PATHS = ("/api/cats/?page_size=20", "/", "/healthz")
CONNECTIONS = 16
UNLIMITED = {"NGINX_RATE_LIMIT": "100000", "NGINX_RATE_BURST": "100000", "NGINX_CONN_LIMIT": "1000"}
SEED = (
    "from app.cats.models import Cat; Cat.objects.bulk_create("
    "[Cat(name=f'Cat {i}', breed='Tabby', age=i % 20) for i in range(40)])"
)


def switch_mode(stack: Stack, scratch: Path, mode: str) -> Stack:
    """Recreate web in `mode` and wait until nginx reaches the new container."""
    moved = reconfigured(stack, scratch / mode, GUNICORN_MODE=mode)
    moved.up("web")
    deadline = time.monotonic() + 60
    streak = 0
    while streak < 20:
        if time.monotonic() > deadline:
            raise SystemExit(f"web in mode {mode} did not answer through nginx")
        try:
            ok = requests.get(stack.url("/api/cats/"), headers=lb_headers(), timeout=5).ok
        except requests.RequestException:
            ok = False
        streak = streak + 1 if ok else 0
        time.sleep(0.05)
    return moved


def lb_headers() -> dict[str, str]:
    return {"Host": "localhost", "X-Forwarded-Proto": "https"}


def wrk(url: str, duration: int) -> dict[str, float]:
    headers = [arg for name, value in lb_headers().items() for arg in ("-H", f"{name}: {value}")]
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", *headers, url]
    return parse_wrk(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def web_memory_mib(stack: Stack) -> float:
    usage = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", stack.container("web"))
    value = usage.stdout.split("/")[0].strip()
    number, unit = float(value[:-3]), value[-3:]
    return number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-modes-"))
    results: dict[tuple[str, str], list[dict]] = {}
    memory: dict[str, list[float]] = {}
    name = f"bench-{secrets.token_hex(3)}"
    (scratch / "base").mkdir()
    with running_stack(name, scratch / "base", free_port(), UNLIMITED) as stack:
        python_in_web(stack, SEED)
        print(f"stack {name} up in {stack.up_seconds:.0f} s", flush=True)
        cpus = docker("info", "--format", "{{.NCPU}}").stdout.strip()
        for round_number in range(1, args.rounds + 1):
            for mode in MODES:
                switch_mode(stack, scratch / f"r{round_number}", mode)
                for path in PATHS:
                    wrk(stack.url(path), 2)  # warm-up: imports, pools, template caches
                    result = wrk(stack.url(path), args.duration)
                    results.setdefault((mode, path), []).append(result)
                    print(
                        f"round {round_number} {mode:11} {path:24} {result['rps']:7.0f} req/s "
                        f"p50 {result['p50']:6.1f} ms p99 {result['p99']:6.1f} ms "
                        f"errors {result['errors']}",
                        flush=True,
                    )
                memory.setdefault(mode, []).append(web_memory_mib(stack))

    print(
        f"\n{cpus} CPUs, web default workers (2 per CPU), wrk -t2 -c{CONNECTIONS} "
        f"-d{args.duration}s, median of {args.rounds} rounds\n"
    )
    print("| mode | path | req/s | vs wsgi | p50 ms | p99 ms | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for path in PATHS:
        base = statistics.median(r["rps"] for r in results[("wsgi", path)])
        for mode in MODES:
            runs = results[(mode, path)]
            rps = statistics.median(r["rps"] for r in runs)
            print(
                f"| {mode} | `{path}` | {rps:.0f} | {rps / base:.2f} | "
                f"{statistics.median(r['p50'] for r in runs):.1f} | "
                f"{statistics.median(r['p99'] for r in runs):.1f} | "
                f"{sum(r['errors'] for r in runs)} |"
            )
    print("\n| mode | web memory after the runs (MiB, median) |\n|---|---:|")
    for mode in MODES:
        print(f"| {mode} | {statistics.median(memory[mode]):.0f} |")


if __name__ == "__main__":
    main()
