"""gunicorn's server modes through the real stack: nginx -> gunicorn -> Django -> PostgreSQL.

Run from the repo root, with the engine up (tests/run starts it) and wrk installed:

    .venv/bin/python -m tests.benchmarks.server_modes [--duration 8] [--rounds 3]

Three compose.yaml stacks side by side (projects `bench-<random>-<variant>`, nginx published
on 127.0.0.1 only, always taken down), each seeded with the same 40 cats:
  wsgi    GUNICORN_MODE=wsgi (gthread), the default
  asgi    GUNICORN_MODE=asgi (uvicorn through the uvicorn-worker package)
  native  GUNICORN_MODE=asgi with the web command overridden to add `--worker-class asgi`:
          gunicorn 27's own asyncio worker running the same config.asgi (a command-line option
          beats the config module). Measured, not shipped: see docs/benchmarks.md.
wrk plays the load balancer (X-Forwarded-Proto: https, 16 connections) against three paths.
Runs are interleaved (each path: every variant in turn, the order rotating each round), so the
machine's noise falls on every variant alike; the report gives, per variant and path, the
median throughput and latency of the rounds and the median of the per-round ratios to wsgi.
nginx's rate limits are raised for the run (NGINX_RATE_LIMIT and friends).
"""

import argparse
import contextlib
import json
import secrets
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.benchmarks.db_connections import parse_wrk
from tests.harness import REPO
from tests.harness.compose import ComposeProject
from tests.harness.docker import docker
from tests.harness.ports import free_port
from tests.stack.support import Stack, python_in_web, stack_env

GUNICORN = ["gunicorn", "--config", "python:config.gunicorn"]
# variant: (GUNICORN_MODE, web command or None for the image's own)
VARIANTS = {
    "wsgi": ("wsgi", None),
    "asgi": ("asgi", None),
    "native": ("asgi", [*GUNICORN, "--worker-class", "asgi", "--asgi-lifespan", "off"]),
}
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


@contextlib.contextmanager
def variant_stack(name: str, scratch: Path, variant: str) -> Iterator[Stack]:
    mode, command = VARIANTS[variant]
    files = ["compose.yaml"]
    if command is not None:
        override = scratch / "command.yaml"
        override.write_text(json.dumps({"services": {"web": {"command": command}}}))
        files.append(str(override))
    env = stack_env(free_port(), **UNLIMITED, GUNICORN_MODE=mode)
    project = ComposeProject(name, files, scratch, env=env, cwd=REPO)
    stack = Stack(project, int(env["HTTP_PORT"]), env=env)
    try:
        stack.up_seconds = stack.up()
        yield stack
    finally:
        project.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-modes-"))
    results: dict[tuple[str, str], list[dict]] = {}
    name = f"bench-{secrets.token_hex(3)}"
    variants = tuple(VARIANTS)
    with contextlib.ExitStack() as stacks:
        stack_of = {}
        for variant in variants:
            (scratch / variant).mkdir()
            stack_of[variant] = stacks.enter_context(
                variant_stack(f"{name}-{variant}", scratch / variant, variant)
            )
            python_in_web(stack_of[variant], SEED)
            print(f"stack {name}-{variant} up in {stack_of[variant].up_seconds:.0f} s", flush=True)
        for round_number in range(args.rounds):
            shift = round_number % len(variants)
            order = variants[shift:] + variants[:shift]
            for path in PATHS:
                for variant in order:
                    url = stack_of[variant].url(path)
                    wrk(url, 2)  # warm-up: imports, pools, template caches
                    result = wrk(url, args.duration)
                    results.setdefault((variant, path), []).append(result)
                    print(
                        f"round {round_number + 1} {variant:6} {path:24} {result['rps']:7.0f} "
                        f"req/s p50 {result['p50']:6.1f} ms p99 {result['p99']:6.1f} ms "
                        f"errors {result['errors']}",
                        flush=True,
                    )
        memory = {variant: web_memory_mib(stack_of[variant]) for variant in variants}
        cpus = docker("info", "--format", "{{.NCPU}}").stdout.strip()

    print(
        f"\n{cpus} CPUs, default workers, wrk -t2 -c{CONNECTIONS} "
        f"-d{args.duration}s, {args.rounds} rounds\n"
    )
    print("| path | variant | req/s | vs wsgi | p50 ms | p99 ms | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for path in PATHS:
        baseline = [r["rps"] for r in results[("wsgi", path)]]
        for variant in variants:
            runs = results[(variant, path)]
            ratio = statistics.median(r["rps"] / b for r, b in zip(runs, baseline, strict=True))
            print(
                f"| `{path}` | {variant} | {statistics.median(r['rps'] for r in runs):.0f} | "
                f"{ratio:.2f} | {statistics.median(r['p50'] for r in runs):.1f} | "
                f"{statistics.median(r['p99'] for r in runs):.1f} | "
                f"{sum(r['errors'] for r in runs)} |"
            )
    print("\n| variant | web container memory after the runs (MiB) |\n|---|---:|")
    for variant in variants:
        print(f"| {variant} | {memory[variant]:.0f} |")


if __name__ == "__main__":
    main()
