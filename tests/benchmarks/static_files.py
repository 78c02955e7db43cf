"""Static files through the stack's nginx against nginx's raw speed on the same file.

Run from the repo root with the engine up (tests/run starts it; needs wrk):

    .venv/bin/python -m tests.benchmarks.static_files [--duration 5] [--rounds 3]

Boots compose.yaml (published on 127.0.0.1 only), takes one hashed stylesheet from the nginx
container, and serves that same file from the stock nginx image: with its default
configuration, and with access logging off (nginx's raw speed: nothing but sendfile). wrk
(2 threads, 32 connections) alternates between the servers for several rounds, so all see the
same machine noise; the table gives medians and the ratio to the raw speed.
"""

import argparse
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import requests

from tests.benchmarks.wrk import parse_wrk
from tests.harness import REPO
from tests.harness.base_images import dockerfile_base
from tests.harness.compose import ComposeProject
from tests.harness.docker import docker
from tests.harness.ports import free_port
from tests.stack.support import SITE_HOST, stack_env

RAW_IMAGE = dockerfile_base(REPO, "nginx/Dockerfile", named_contexts=frozenset({"web"}))
RAW_SITE = """server {
    listen 8081;
    access_log off;
    root /usr/share/nginx/html;
}
"""
WRK = ["wrk", "-t2", "-c32", "--latency"]


def wrk(url: str, duration: int, headers: dict[str, str]) -> dict[str, float]:
    header_args = [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]
    run = subprocess.run(
        [*WRK, f"-d{duration}s", *header_args, url], capture_output=True, text=True, check=True
    )
    return parse_wrk(run.stdout)


def wait_for(url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer 200 within 60s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two servers")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="cats-static-bench-"))
    port, raw_port, silent_port = free_port(), free_port(), free_port()
    project = ComposeProject(
        f"bench-static-{uuid.uuid4().hex[:8]}",
        ["compose.yaml"],
        scratch,
        env=stack_env(port),
        cwd=REPO,
    )
    raw_name = f"{project.name}-raw"
    try:
        project.up(build=True, timeout=300)
        site = {"Host": SITE_HOST, "X-Forwarded-Proto": "https"}
        login = requests.get(f"http://127.0.0.1:{port}/admin/login/", headers=site, timeout=10)
        path = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login.text)[1]
        nginx = project.container_id("nginx")
        docker("cp", f"{nginx}:/srv{path}", str(scratch / "file.css"))
        (scratch / "file.css").chmod(0o644)
        (scratch / "raw.conf").write_text(RAW_SITE)
        (scratch / "raw.conf").chmod(0o644)
        docker(
            "run", "--detach", "--name", raw_name,
            "--publish", f"127.0.0.1:{raw_port}:80", "--publish", f"127.0.0.1:{silent_port}:8081",
            "--volume", f"{scratch / 'file.css'}:/usr/share/nginx/html/file.css:ro",
            "--volume", f"{scratch / 'raw.conf'}:/etc/nginx/conf.d/raw.conf:ro", RAW_IMAGE,
        )  # fmt: skip
        size = (scratch / "file.css").stat().st_size

        cases = {
            f"raw nginx, no access log ({size} B)": (
                f"http://127.0.0.1:{silent_port}/file.css",
                {},
            ),
            "stock nginx, default config (access log on)": (
                f"http://127.0.0.1:{raw_port}/file.css",
                {},
            ),
            "stack nginx /static/, identity": (f"http://127.0.0.1:{port}{path}", site),
            "stack nginx /static/, precompressed .gz": (
                f"http://127.0.0.1:{port}{path}",
                {**site, "Accept-Encoding": "gzip"},
            ),
        }
        results: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
        for url, headers in cases.values():
            wait_for(url, headers)
            wrk(url, 1, headers)  # warm-up: connections, open_file_cache, page cache
        for _ in range(args.rounds):
            for name, (url, headers) in cases.items():
                results[name].append(wrk(url, args.duration, headers))

        raw_rps = statistics.median(r["rps"] for r in next(iter(results.values())))
        print(f"{path}, {args.rounds} rounds x {args.duration} s, wrk -t2 -c32, medians\n")
        print("| server | req/s | vs raw | p50 ms | p99 ms | errors |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, runs in results.items():
            rps = statistics.median(r["rps"] for r in runs)
            print(
                f"| {name} | {rps:.0f} | {rps / raw_rps:.2f} | "
                f"{statistics.median(r['p50'] for r in runs):.2f} | "
                f"{statistics.median(r['p99'] for r in runs):.2f} | "
                f"{sum(r['errors'] for r in runs)} |"
            )
    finally:
        docker("rm", "--force", raw_name, check=False)
        project.down()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
