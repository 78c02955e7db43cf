"""What the health probes cost: /healthz and /readyz against /api/cats/ on one gunicorn.

Run from the repo root (needs wrk and Debian's PostgreSQL server binaries):

    .venv/bin/python -m tests.benchmarks.probes [--duration 5]

One gthread worker (4 threads, the pooled connections default) against a throwaway cluster,
wrk with 4 connections per path. Reports throughput and latency per path.
"""

import argparse
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.benchmarks.db_connections import (
    GUNICORN,
    django_env,
    host_cluster,
    seed,
    wait_until_up,
)
from tests.benchmarks.wrk import parse_wrk
from tests.harness import REPO
from tests.harness.ports import free_port

PATHS = ("/healthz", "/readyz", "/api/cats/?page_size=20")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per path")
    args = parser.parse_args()

    cluster = host_cluster()
    scratch = Path(tempfile.mkdtemp(prefix="cats-bench-"))
    port = free_port()
    env = django_env(cluster, scratch)
    server = None
    try:
        seed(env)
        server = subprocess.Popen(
            [
                GUNICORN,
                "config.wsgi:application",
                "--worker-class=gthread",
                "--threads=4",
                "--workers=1",
                f"--bind=127.0.0.1:{port}",
                "--no-control-socket",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_up(f"http://127.0.0.1:{port}/healthz", server)
        print("| path | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|")
        for path in PATHS:
            url = f"http://127.0.0.1:{port}{path}"
            subprocess.run(["wrk", "-t1", "-c4", "-d1s", url], capture_output=True, check=True)
            run = subprocess.run(
                ["wrk", "-t1", "-c4", f"-d{args.duration}s", "--latency", url],
                capture_output=True,
                text=True,
                check=True,
            )
            result = parse_wrk(run.stdout)
            print(
                f"| {path} | {result['rps']:.0f} | {result['p50']:.1f} | {result['p99']:.1f} | "
                f"{result['errors']} |"
            )
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
