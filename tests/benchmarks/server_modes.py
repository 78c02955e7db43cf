"""gunicorn's three server modes through the real stack: nginx -> gunicorn -> Django -> PostgreSQL.

Run from the repo root, with the engine up (tests/run starts it) and wrk installed:

    .venv/bin/python -m tests.benchmarks.server_modes [--duration 8] [--rounds 3]

Three compose.yaml stacks side by side (projects `bench-<random>-<mode>`, nginx published on
127.0.0.1 only, always taken down), identical but for GUNICORN_MODE, each seeded with the same
40 cats. wrk plays the load balancer (X-Forwarded-Proto: https, 16 connections) against three
paths. Runs are interleaved (each path: every mode in turn, the order rotating each round), so
the machine's noise falls on every mode alike; the report gives, per mode and path, the median
throughput and latency of the rounds and the median of the per-round ratios to wsgi. nginx's
rate limits are raised for the run (NGINX_RATE_LIMIT and friends).
"""

import argparse
import contextlib
import secrets
import statistics
import subprocess
import tempfile
from pathlib import Path

from tests.benchmarks.db_connections import parse_wrk
from tests.harness.docker import docker, free_port
from tests.stack.support import Stack, python_in_web, running_stack

MODES = ("wsgi", "asgi", "asgi-native")
PATHS = ("/api/cats/?page_size=20", "/", "/healthz")
CONNECTIONS = 16
UNLIMITED = {"NGINX_RATE_LIMIT": "100000", "NGINX_RATE_BURST": "100000", "NGINX_CONN_LIMIT": "1000"}
SEED = (
    "from app.cats.models import Cat; Cat.objects.bulk_create("
    "[Cat(name=f'Cat {i}', breed='Tabby', age=i % 20) for i in range(40)])"
)


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
    name = f"bench-{secrets.token_hex(3)}"
    with contextlib.ExitStack() as stacks:
        stack_of = {}
        for mode in MODES:
            (scratch / mode).mkdir()
            stack_of[mode] = stacks.enter_context(
                running_stack(
                    f"{name}-{mode}",
                    scratch / mode,
                    free_port(),
                    UNLIMITED | {"GUNICORN_MODE": mode},
                )
            )
            python_in_web(stack_of[mode], SEED)
            print(f"stack {name}-{mode} up in {stack_of[mode].up_seconds:.0f} s", flush=True)
        for round_number in range(args.rounds):
            order = MODES[round_number % len(MODES) :] + MODES[: round_number % len(MODES)]
            for path in PATHS:
                for mode in order:
                    url = stack_of[mode].url(path)
                    wrk(url, 2)  # warm-up: imports, pools, template caches
                    result = wrk(url, args.duration)
                    results.setdefault((mode, path), []).append(result)
                    print(
                        f"round {round_number + 1} {mode:11} {path:24} {result['rps']:7.0f} req/s "
                        f"p50 {result['p50']:6.1f} ms p99 {result['p99']:6.1f} ms "
                        f"errors {result['errors']}",
                        flush=True,
                    )
        memory = {mode: web_memory_mib(stack_of[mode]) for mode in MODES}
        cpus = docker("info", "--format", "{{.NCPU}}").stdout.strip()

    print(
        f"\n{cpus} CPUs, default workers (2 per CPU), wrk -t2 -c{CONNECTIONS} "
        f"-d{args.duration}s, {args.rounds} rounds\n"
    )
    print("| path | mode | req/s | vs wsgi | p50 ms | p99 ms | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for path in PATHS:
        baseline = [r["rps"] for r in results[("wsgi", path)]]
        for mode in MODES:
            runs = results[(mode, path)]
            ratio = statistics.median(r["rps"] / b for r, b in zip(runs, baseline, strict=True))
            print(
                f"| `{path}` | {mode} | {statistics.median(r['rps'] for r in runs):.0f} | "
                f"{ratio:.2f} | {statistics.median(r['p50'] for r in runs):.1f} | "
                f"{statistics.median(r['p99'] for r in runs):.1f} | "
                f"{sum(r['errors'] for r in runs)} |"
            )
    print("\n| mode | web container memory after the runs (MiB) |\n|---|---:|")
    for mode in MODES:
        print(f"| {mode} | {memory[mode]:.0f} |")


if __name__ == "__main__":
    main()
