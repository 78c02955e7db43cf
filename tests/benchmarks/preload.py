"""What preloading the app in gunicorn's master buys: worker restarts (max_requests) and memory.

Run from the repo root, with the engine up and wrk installed:

    .venv/bin/python -m tests.benchmarks.preload [--duration 8] [--rounds 3]

The production image twice (GUNICORN_PRELOAD true and false, everything else default, so
workers are replaced every ~1000 requests), side by side against one PostgreSQL container,
port 8000 published on 127.0.0.1. wrk (16 connections) runs against each in turn, the order
alternating each round; reported: median req/s, p50 and p99 of the rounds, how many workers
were replaced, and each container's memory afterwards.
"""

import argparse
import secrets
import statistics
import subprocess
import time

import requests

from tests.benchmarks.wrk import parse_wrk
from tests.harness import REPO
from tests.harness.base_images import postgres_image
from tests.harness.containers import Containers
from tests.harness.docker import build_image, docker, run_id

IMAGE = "catcollector-bench/web:latest"
VARIANTS = ("true", "false")
PATHS = ("/healthz", "/api/cats/?page_size=20")
PASSWORD = secrets.token_urlsafe(16)


def wait_until_serving(port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the web container on port {port} never became ready")


def network_with_database(containers: Containers, password: str) -> str:
    """A network where compose's PostgreSQL image answers as `db`, as in the stack."""
    network = containers.network()
    containers.run(
        postgres_image(REPO),
        env={"POSTGRES_PASSWORD": password},
        options=["--network", network, "--network-alias", "db"],
    )
    return network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    build_image(REPO, IMAGE)
    containers = Containers(run_id(), "bench-preload")
    try:
        network = network_with_database(containers, PASSWORD)
        env = {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "POSTGRES_HOST": "db",
            "POSTGRES_PASSWORD": PASSWORD,
        }
        webs, ports = {}, {}
        for variant in VARIANTS:
            webs[variant] = containers.run(
                IMAGE,
                env=env | {"GUNICORN_PRELOAD": variant},
                options=["--network", network, "--publish", "127.0.0.1::8000"],
            )
            ports[variant] = int(
                docker("port", webs[variant].name, "8000/tcp").stdout.split(":")[-1]
            )
            wait_until_serving(ports[variant])

        results: dict[tuple[str, str], list[dict]] = {}
        for round_number in range(args.rounds):
            order = VARIANTS if round_number % 2 == 0 else VARIANTS[::-1]
            for path in PATHS:
                for variant in order:
                    url = f"http://127.0.0.1:{ports[variant]}{path}"
                    command = ["wrk", "-t2", "-c16", f"-d{args.duration}s", "--latency", url]
                    output = subprocess.run(command, capture_output=True, text=True, check=True)
                    result = parse_wrk(output.stdout)
                    if result["errors"]:
                        raise SystemExit(f"{url}: {result['errors']} errors, measuring nothing")
                    results.setdefault((variant, path), []).append(result)

        print(f"wrk -t2 -c16 -d{args.duration}s, {args.rounds} rounds, medians\n")
        print("| GUNICORN_PRELOAD | path | req/s | p50 ms | p99 ms |")
        print("|---|---|---:|---:|---:|")
        for path in PATHS:
            for variant in VARIANTS:
                runs = results[(variant, path)]
                print(
                    f"| {variant} | `{path}` | {statistics.median(r['rps'] for r in runs):.0f} | "
                    f"{statistics.median(r['p50'] for r in runs):.1f} | "
                    f"{statistics.median(r['p99'] for r in runs):.1f} |"
                )
        print("\n| GUNICORN_PRELOAD | workers replaced | memory afterwards |\n|---|---:|---:|")
        for variant in VARIANTS:
            logs = webs[variant].logs()
            memory = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", webs[variant].name)
            print(
                f"| {variant} | {logs.count('Autorestarting worker')} | "
                f"{memory.stdout.split('/')[0].strip()} |"
            )
    finally:
        containers.remove_all()


if __name__ == "__main__":
    main()
