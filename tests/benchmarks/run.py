"""The benchmark: Django alone, gunicorn alone, the stack and a tutorial setup, in one run.

Run from the repository root with the test venv (tests/harness/install-venv), a Docker engine
and wrk on the host (Debian: `apt-get install wrk`); on a shared engine hold its lock for the
whole run:

    .venv/bin/python -m tests.benchmarks.run [--quick]

`--report RESULTS` measures nothing and needs neither: it prints the goals and tables of a
stored results file (docs/benchmarks/results.json, docs/benchmarks/before-33a170e.json), and
the tail (p50, p99) at the goals' concurrency, which the generated section leaves out.

It regenerates docs/benchmarks/*.png, docs/benchmarks/results.json and the generated section of
docs/benchmarks.md (between the `benchmarks.run` markers): see that file for what is measured
and how to read it. Nothing here is collected by pytest.

One compose project (`bench-<random>`, published on 127.0.0.1 only, always taken down) runs
compose.yaml as shipped, plus an override that only adds:
  - web's port published, so gunicorn is reached without nginx ("gunicorn");
  - `tutorial-web` and `tutorial-nginx`: the same web image run the way a tutorial runs it (one
    sync gunicorn worker, gunicorn's defaults, DEBUG on, no access log) behind the stock nginx
    image with a 20-line configuration (TUTORIAL_NGINX), sharing the stack's database and
    static files ("tutorial");
  - on tutorial-nginx, a second server serving the same static files with no access log and
    nothing else: nginx's raw speed ("raw nginx").
nginx's per-client limits are raised (NGINX_RATE_LIMIT and friends): wrk is one client.
"Django" is the test client inside the web container (no HTTP, no server): the floor.

Every variant sees the same machine noise: each measurement point runs the variants back to
back in an order that rotates every round, and the tables give medians over the rounds. CPU is
read from each container's cgroup around each wrk run and divided by the requests served.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from tests.benchmarks.wrk import parse_wrk
from tests.harness import REPO
from tests.harness.base_images import dockerfile_base
from tests.harness.compose import ComposeProject
from tests.harness.docker import docker
from tests.harness.ports import free_port
from tests.stack.support import stack_env

CONCURRENCY = (1, 4, 16, 32, 64, 128, 256)
QUICK_CONCURRENCY = (1, 32, 256)
SIZES = (10, 10_000, 1_000_000)
# The concurrency sweep runs with this many cats (a table that is not trivially small).
SWEEP_SIZE = 10_000
# The concurrency the goals are read at (the measurements: wrk c=32).
GOAL_CONCURRENCY = 32
PATHS = {
    "template page": "/admin/login/",
    "list page": "/",
    "JSON API": "/api/cats/?page_size=20",
    "static file": None,  # the admin's hashed base.css, found at run time
}
DYNAMIC = ("template page", "list page", "JSON API")
SIZE_PATHS = ("list page", "JSON API")
VARIANTS = ("gunicorn", "stack", "tutorial")
STATIC_VARIANTS = (*VARIANTS, "raw nginx")
# Whose CPU each variant spends (db counts for all; "app" is the Python server).
CONTAINERS = {
    "gunicorn": ("web", "db"),
    "stack": ("web", "nginx", "db"),
    "tutorial": ("tutorial-web", "tutorial-nginx", "db"),
    "raw nginx": ("tutorial-nginx",),
}
APP_CONTAINER = {"gunicorn": "web", "stack": "web", "tutorial": "tutorial-web"}
UNLIMITED = {"NGINX_RATE_LIMIT": "100000", "NGINX_RATE_BURST": "100000", "NGINX_CONN_LIMIT": "4096"}
# What the load balancer sends (the stack expects HTTPS there).
LB_HEADERS = {"Host": "localhost", "X-Forwarded-Proto": "https"}
WEB_IMAGE, NGINX_IMAGE, VERSION = "catcollector-bench/web", "catcollector-bench/nginx", "bench"

# A tutorial's nginx: proxy to one upstream, static files from disk, nothing else. The second
# server is nginx's raw speed on the same files (no access log).
TUTORIAL_NGINX = """\
upstream app {
    server tutorial-web:8000;
}

server {
    listen 80;
    server_name localhost;

    location /static/ {
        alias /srv/site/static/;
    }

    location / {
        proxy_pass http://app;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }
}

server {
    listen 8081;
    access_log off;
    location /static/ {
        alias /srv/site/static/;
    }
}
"""

# Django's own cost: the test client in the web container, CPU time per request.
IN_PROCESS = """
import os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="localhost", HTTP_X_FORWARDED_PROTO="https")
path, count = sys.argv[1], int(sys.argv[2])
for _ in range(100):
    assert client.get(path).status_code == 200, path
cpu, wall = time.process_time(), time.perf_counter()
for _ in range(count):
    client.get(path)
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(f"{1000 * cpu / count} {count / wall}")
"""

SEED_SQL = """
INSERT INTO cats_cat (name, breed, description, age, photo, created_at, updated_at)
SELECT 'Cat ' || i, 'Tabby', 'A cat of the benchmark.', i % 20, '',
       now() - make_interval(secs => i), now()
FROM generate_series({start}, {end}) AS i;
VACUUM ANALYZE cats_cat;
"""


def overrides(scratch: Path, gunicorn_port: int, tutorial_port: int, raw_port: int) -> Path:
    (scratch / "tutorial.conf").write_text(TUTORIAL_NGINX)
    (scratch / "tutorial.conf").chmod(0o644)
    web_image = f"{WEB_IMAGE}:{VERSION}"
    database = {
        "POSTGRES_USER": "catcollector",
        "POSTGRES_DB": "catcollector",
        "POSTGRES_PASSWORD_FILE": "/run/secrets/catcollector/postgres_password",
        "POSTGRES_HOST": "db",
    }
    config = {
        "services": {
            "web": {"ports": [f"127.0.0.1:{gunicorn_port}:8000"]},
            "tutorial-web": {
                "image": web_image,
                "pull_policy": "never",
                # gunicorn's defaults: one sync worker, no access log, no config module.
                "command": ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000"],
                "environment": {
                    **database,
                    "DJANGO_SECRET_KEY_FILE": "/run/secrets/catcollector/django_secret_key",
                    "DJANGO_ALLOWED_HOSTS": "localhost",
                    "DJANGO_DEBUG": "true",
                    "DJANGO_SECURE_SSL_REDIRECT": "false",
                    "DJANGO_SECURE_COOKIES": "false",
                    "DJANGO_MIGRATE_ON_START": "false",
                },
                "volumes": ["secrets:/run/secrets/catcollector:ro"],
                "networks": ["frontend", "backend"],
                "depends_on": {"web": {"condition": "service_healthy"}},
            },
            "tutorial-nginx": {
                "image": dockerfile_base(REPO, "nginx/Dockerfile"),
                "pull_policy": "never",
                "volumes": [
                    "site:/srv/site:ro",
                    f"{scratch / 'tutorial.conf'}:/etc/nginx/conf.d/default.conf:ro",
                ],
                "ports": [f"127.0.0.1:{tutorial_port}:80", f"127.0.0.1:{raw_port}:8081"],
                "networks": ["frontend"],
                "depends_on": {
                    "tutorial-web": {"condition": "service_healthy"},
                    "publish": {"condition": "service_completed_successfully"},
                },
            },
        },
        # web's published gunicorn port needs a network with a route out (compose.dev.yaml's
        # reason).
        "networks": {"outbound": {"internal": False}},
    }
    path = scratch / "bench.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


class Bench:
    """The compose project and everything a measurement needs from it."""

    def __init__(self, scratch: Path, env_overrides: dict[str, str]) -> None:
        self.ports = {
            "stack": free_port(),
            "gunicorn": free_port(),
            "tutorial": free_port(),
            "raw nginx": free_port(),
        }
        override = overrides(
            scratch, self.ports["gunicorn"], self.ports["tutorial"], self.ports["raw nginx"]
        )
        env = stack_env(
            self.ports["stack"],
            **UNLIMITED,
            WEB_IMAGE=WEB_IMAGE,
            NGINX_IMAGE=NGINX_IMAGE,
            APP_VERSION=VERSION,
            NGINX_VERSION=VERSION,
            **env_overrides,
        )
        self.project = ComposeProject(
            f"bench-{secrets.token_hex(3)}",
            ["compose.yaml", str(override)],
            scratch,
            env=env,
            cwd=REPO,
        )
        self.cats = 0
        self.containers: dict[str, str] = {}

    def up(self) -> None:
        self.project.up(build=True, timeout=600)
        for service in ("web", "nginx", "db", "tutorial-web", "tutorial-nginx"):
            self.containers[service] = self.project.container_id(service).splitlines()[0]

    def url(self, variant: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[variant]}{path}"

    def seed(self, cats: int) -> None:
        """Grow the table to `cats` rows (never shrinks: sizes are measured in rising order)."""
        if cats > self.cats:
            sql = SEED_SQL.format(start=self.cats + 1, end=cats)
            self.project.compose(
                "exec", "-T", "db", "psql", "--quiet", "--username", "catcollector",
                "--dbname", "catcollector", "--set", "ON_ERROR_STOP=1", input=sql, timeout=900,
            )  # fmt: skip
            self.cats = cats

    def static_path(self) -> str:
        login = requests.get(self.url("stack", "/admin/login/"), headers=LB_HEADERS, timeout=30)
        return re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login.text)[1]

    def cpu_seconds(self, service: str) -> float | None:
        """The container's CPU time so far, from its cgroup (v1 or v2)."""
        full_id = docker("inspect", "--format", "{{.Id}}", self.containers[service]).stdout
        full_id = full_id.strip()
        for path, scale in (
            (f"/sys/fs/cgroup/cpuacct/docker/{full_id}/cpuacct.usage", 1e-9),
            (f"/sys/fs/cgroup/system.slice/docker-{full_id}.scope/cpu.stat", 1e-6),
            (f"/sys/fs/cgroup/docker/{full_id}/cpu.stat", 1e-6),
        ):
            with contextlib.suppress(OSError):
                text = Path(path).read_text()
                if path.endswith("cpu.stat"):
                    text = re.search(r"usage_usec (\d+)", text)[1]
                return int(text) * scale
        return None

    def in_process(self, path: str, count: int) -> dict[str, float]:
        out = self.project.exec("web", "python", "-c", IN_PROCESS, path, str(count)).stdout
        cpu_ms, rps = map(float, out.split()[-2:])
        return {"cpu_ms": cpu_ms, "rps": rps}


def wrk(url: str, connections: int, duration: float, headers: dict[str, str]) -> dict:
    header_args = [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]
    command = [
        "wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration}s", "--latency",
        "--timeout", "10s", *header_args, url,
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 60)
    return parse_wrk(run.stdout)


def measure(bench: Bench, variant: str, path: str, connections: int, duration: float) -> dict:
    url = bench.url(variant, path)
    wrk(url, connections, 1, LB_HEADERS)  # warm-up: connections, caches, the pool
    services = CONTAINERS[variant]
    before = {s: bench.cpu_seconds(s) for s in services}
    result = wrk(url, connections, duration, LB_HEADERS)
    after = {s: bench.cpu_seconds(s) for s in services}
    served = max(result["requests"], 1)
    result["cpu_ms"] = {
        s: 1000 * (after[s] - before[s]) / served
        for s in services
        if before[s] is not None and after[s] is not None
    }
    return result


def rotated(items: tuple[str, ...], round_number: int) -> tuple[str, ...]:
    shift = round_number % len(items)
    return items[shift:] + items[:shift]


def run(args: argparse.Namespace, bench: Bench, log) -> dict:
    """Every measurement of one run, as a list of rows (results.json)."""
    rows: list[dict] = []
    levels = args.concurrency
    paths = dict(PATHS, **{"static file": bench.static_path()})

    def record(row: dict) -> None:
        rows.append(row)
        cpu = " ".join(f"{k}={v:.2f}" for k, v in row.get("cpu_ms", {}).items())
        log(
            f"{row['section']:11} r{row['round']} {row['variant']:9} {row['path']:13} "
            f"c={row.get('connections', '-'):<3} cats={row['cats']:<7} {row['rps']:8.0f} req/s "
            f"p50 {row['p50']:7.1f} p99 {row['p99']:7.1f} ms err {row['errors']} {cpu}"
        )

    def point(section: str, round_number: int, name: str, connections: int) -> None:
        variants = STATIC_VARIANTS if name == "static file" else VARIANTS
        for variant in rotated(variants, round_number):
            result = measure(bench, variant, paths[name], connections, args.duration)
            record(
                {"section": section, "round": round_number, "variant": variant, "path": name,
                 "connections": connections, "cats": bench.cats, **result}
            )  # fmt: skip

    for size in [s for s in args.sizes if s < SWEEP_SIZE]:
        bench.seed(size)
        for round_number in range(args.rounds):
            for name in SIZE_PATHS:
                point("size", round_number, name, GOAL_CONCURRENCY)
    bench.seed(SWEEP_SIZE)
    for round_number in range(args.rounds):
        for name in DYNAMIC:
            result = bench.in_process(paths[name], args.in_process_requests)
            record(
                {"section": "in-process", "round": round_number, "variant": "Django",
                 "path": name, "cats": bench.cats, "rps": result["rps"], "p50": 0.0,
                 "p99": 0.0, "errors": 0, "cpu_ms": {"web": result["cpu_ms"]}}
            )  # fmt: skip
        for connections in rotated(levels, round_number):
            for name in PATHS:
                point("concurrency", round_number, name, connections)
    for size in [s for s in args.sizes if s >= SWEEP_SIZE]:
        bench.seed(size)
        for round_number in range(args.rounds):
            for name in SIZE_PATHS:
                point("size", round_number, name, GOAL_CONCURRENCY)
    return {"rows": rows, "static_path": paths["static file"]}


# --- Reporting ---------------------------------------------------------------------------------


def median_of(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def cpu_median(rows: list[dict], service: str | None = None) -> float | None:
    values = [
        (r["cpu_ms"].get(service) if service else sum(r["cpu_ms"].values()))
        for r in rows
        if r["cpu_ms"] and (service is None or service in r["cpu_ms"])
    ]
    return statistics.median(values) if values else None


def select(rows: list[dict], **where) -> list[dict]:
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def goals(rows: list[dict]) -> list[str]:
    """The issue's goals, read from this run's medians at GOAL_CONCURRENCY."""
    at = {"section": "concurrency", "connections": GOAL_CONCURRENCY}
    lines = ["| goal | measured | target | met |", "|---|---:|---:|---|"]
    for name in DYNAMIC:
        floor = cpu_median(select(rows, section="in-process", path=name), "web")
        web = cpu_median(select(rows, **at, variant="stack", path=name), "web")
        if floor and web:
            ratio = web / floor
            lines.append(
                f"| {name}: web CPU/request / Django in-process ({fmt(web)} / {fmt(floor)} ms) "
                f"| {ratio:.2f}x | ≤ 1.15x | {'yes' if ratio <= 1.15 else 'no'} |"
            )
    for name in DYNAMIC:
        stack = select(rows, **at, variant="stack", path=name)
        tutorial = select(rows, **at, variant="tutorial", path=name)
        if stack and tutorial:
            p99 = median_of(stack, "p99") / median_of(tutorial, "p99")
            rps = median_of(stack, "rps") / median_of(tutorial, "rps")
            lines.append(
                f"| {name}: p99 stack / tutorial ({median_of(stack, 'p99'):.0f} / "
                f"{median_of(tutorial, 'p99'):.0f} ms) | {p99:.2f}x | ≤ 1.00x | "
                f"{'yes' if p99 <= 1 else 'no'} |"
            )
            lines.append(
                f"| {name}: req/s stack / tutorial ({median_of(stack, 'rps'):.0f} / "
                f"{median_of(tutorial, 'rps'):.0f}) | {rps:.2f}x | ≥ 1.60x | "
                f"{'yes' if rps >= 1.6 else 'no'} |"
            )
    stack = select(rows, **at, variant="stack", path="static file")
    raw = select(rows, **at, variant="raw nginx", path="static file")
    if stack and raw:
        ratio = median_of(stack, "rps") / median_of(raw, "rps")
        lines.append(
            f"| static file: req/s stack / raw nginx ({median_of(stack, 'rps'):.0f} / "
            f"{median_of(raw, 'rps'):.0f}) | {ratio:.2f}x | ≥ 0.90x | "
            f"{'yes' if ratio >= 0.9 else 'no'} |"
        )
    return lines


def tables(rows: list[dict]) -> list[str]:
    lines = ["### CPU per request and the floor", ""]
    lines += [
        f"Medians at c={GOAL_CONCURRENCY}, {SWEEP_SIZE:,} cats, ms of CPU per request; "
        '"all" adds every container the variant uses, the database included.',
        "",
        "| path | Django in-process | gunicorn: web | stack: web | stack: nginx | stack: all "
        "| tutorial: web | tutorial: nginx | tutorial: all |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    at = {"section": "concurrency", "connections": GOAL_CONCURRENCY}
    for name in PATHS:
        floor = cpu_median(select(rows, section="in-process", path=name), "web")
        g = select(rows, **at, variant="gunicorn", path=name)
        s = select(rows, **at, variant="stack", path=name)
        t = select(rows, **at, variant="tutorial", path=name)
        lines.append(
            f"| {name} | {fmt(floor)} | {fmt(cpu_median(g, 'web'))} | {fmt(cpu_median(s, 'web'))} "
            f"| {fmt(cpu_median(s, 'nginx'))} | {fmt(cpu_median(s))} "
            f"| {fmt(cpu_median(t, 'tutorial-web'))} | {fmt(cpu_median(t, 'tutorial-nginx'))} "
            f"| {fmt(cpu_median(t))} |"
        )
    lines += ["", "### Against concurrency", ""]
    lines += [
        f"{SWEEP_SIZE:,} cats; req/s and p99 (ms), medians of the rounds.",
        "",
        *rate_header("clients", STATIC_VARIANTS),
    ]
    levels = sorted({r["connections"] for r in select(rows, section="concurrency")})
    for name in PATHS:
        for c in levels:
            cells = rate_cells(
                select(rows, section="concurrency", connections=c, variant=variant, path=name)
                for variant in STATIC_VARIANTS
            )
            lines.append(f"| {name} | {c} | {cells} |")
    lines += ["", "### Against table size", ""]
    lines += [
        f"c={GOAL_CONCURRENCY}; req/s and p99 (ms), medians of the rounds.",
        "",
        *rate_header("cats", VARIANTS),
    ]
    for name in SIZE_PATHS:
        for size in sorted(
            {r["cats"] for r in select(rows, path=name, connections=GOAL_CONCURRENCY)}
        ):
            cells = rate_cells(
                [
                    r
                    for r in select(rows, variant=variant, path=name, cats=size)
                    if r.get("connections") == GOAL_CONCURRENCY and r["section"] != "in-process"
                ]
                for variant in VARIANTS
            )
            lines.append(f"| {name} | {size:,} | {cells} |")
    return lines


def tail(rows: list[dict]) -> list[str]:
    """p50 and p99 of each variant and dynamic path at GOAL_CONCURRENCY, medians of the rounds."""
    lines = [
        f"Medians at c={GOAL_CONCURRENCY}, {SWEEP_SIZE:,} cats; p99 / p50 is their ratio.",
        "",
        "| path | variant | p50 ms | p99 ms | p99 / p50 |",
        "|---|---|---:|---:|---:|",
    ]
    for name in DYNAMIC:
        for variant in VARIANTS:
            found = select(
                rows, section="concurrency", connections=GOAL_CONCURRENCY, variant=variant,
                path=name,
            )  # fmt: skip
            if found:
                p50, p99 = median_of(found, "p50"), median_of(found, "p99")
                lines.append(f"| {name} | {variant} | {p50:.1f} | {p99:.1f} | {p99 / p50:.2f} |")
    return lines


def report(path: Path) -> None:
    """A stored run's goals, tables and tail, printed: nothing is measured or written."""
    result = json.loads(path.read_text())
    print(f"{path}: measured {result['stamp']}, arguments {result['arguments']}\n")
    print("\n".join([*goals(result["rows"]), "", *tables(result["rows"]), ""]))
    print("\n".join(["### The tail", "", *tail(result["rows"])]))


def rate_header(along: str, variants) -> list[str]:
    """A table's two header lines: the path, `along`, then req/s and p99 of each variant."""
    return [
        f"| path | {along} | " + " | ".join(f"{v} req/s | {v} p99" for v in variants) + " |",
        "|---|---:|" + "---:|---:|" * len(variants),
    ]


def rate_cells(groups) -> str:
    """The req/s and p99 cells of each group of rows, medians; blank where a group is empty."""
    cells = []
    for found in groups:
        cells += (
            [f"{median_of(found, 'rps'):.0f}", f"{median_of(found, 'p99'):.1f}"]
            if found
            else ["", ""]
        )
    return " | ".join(cells)


COLOURS = {"gunicorn": "tab:blue", "stack": "tab:green", "tutorial": "tab:orange",
           "raw nginx": "tab:gray", "Django": "black"}  # fmt: skip


def plots(rows: list[dict], images: Path, stamp: str) -> list[str]:
    import matplotlib  # noqa: PLC0415 (only the report needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return [
        *concurrency_plots(plt, rows, images, stamp),
        size_plot(plt, rows, images, stamp),
        cpu_plot(plt, rows, images, stamp),
    ]


def concurrency_plots(plt, rows: list[dict], images: Path, stamp: str) -> list[str]:
    written = []
    sweep = select(rows, section="concurrency")
    levels = sorted({r["connections"] for r in sweep})
    for metric, label, filename in (
        ("rps", "requests per second", "concurrency-throughput.png"),
        ("p99", "p99 latency (ms, log)", "concurrency-p99.png"),
    ):
        figure, axes = plt.subplots(1, len(PATHS), figsize=(4.2 * len(PATHS), 3.8))
        for axis, name in zip(axes, PATHS, strict=True):
            for variant in STATIC_VARIANTS:
                plot_medians(
                    axis, sweep, variant, name, along="connections", values=levels, metric=metric
                )
            if metric == "rps" and name in DYNAMIC:
                floor = select(rows, section="in-process", path=name)
                if floor:
                    axis.axhline(median_of(floor, "rps"), color="black", linestyle=":",
                                 label="Django in-process, 1 thread")  # fmt: skip
            axis.set_xscale("log", base=2)
            if metric == "p99":
                axis.set_yscale("log")
            axis.set_xticks(levels, [str(c) for c in levels])
            axis.set_title(f"{name} ({PATHS[name] or 'base.css'})", fontsize=9)
            axis.set_xlabel("concurrent clients (wrk connections)")
            axis.grid(True, alpha=0.3)
        axes[0].set_ylabel(label)
        axes[0].legend(fontsize=8)
        axes[-1].legend(fontsize=8)  # the static file adds raw nginx
        figure.suptitle(f"Against concurrency, {SWEEP_SIZE:,} cats ({stamp})", fontsize=10)
        figure.tight_layout()
        figure.savefig(images / filename, dpi=90)
        plt.close(figure)
        written.append(filename)
    return written


def plot_medians(axis, rows: list[dict], variant: str, path: str, *, along: str, values, metric):
    """One variant's line: the median of `metric` at each of `values` of `along`."""
    points = [
        (value, median_of(found, metric))
        for value in values
        if (found := select(rows, variant=variant, path=path, **{along: value}))
    ]
    if points:
        axis.plot(*zip(*points, strict=True), marker="o", label=variant, color=COLOURS[variant])


def size_plot(plt, rows: list[dict], images: Path, stamp: str) -> str:
    sized = [r for r in rows if r["section"] == "size" or (
        r["section"] == "concurrency" and r["connections"] == GOAL_CONCURRENCY
        and r["path"] in SIZE_PATHS)]  # fmt: skip
    sizes = sorted({r["cats"] for r in sized})
    figure, axes = plt.subplots(2, len(SIZE_PATHS), figsize=(10, 7), squeeze=False)
    for column, name in enumerate(SIZE_PATHS):
        for row_index, (metric, label) in enumerate(
            (("rps", "requests per second"), ("p99", "p99 latency (ms, log)"))
        ):
            axis = axes[row_index][column]
            for variant in VARIANTS:
                plot_medians(axis, sized, variant, name, along="cats", values=sizes, metric=metric)
            axis.set_xscale("log")
            if metric == "p99":
                axis.set_yscale("log")
            axis.set_title(f"{name} ({PATHS[name]})", fontsize=9)
            axis.set_xlabel("cats in the table")
            axis.set_ylabel(label)
            axis.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.suptitle(f"Against table size, c={GOAL_CONCURRENCY} ({stamp})", fontsize=10)
    figure.tight_layout()
    figure.savefig(images / "table-size.png", dpi=90)
    plt.close(figure)
    return "table-size.png"


def cpu_plot(plt, rows: list[dict], images: Path, stamp: str) -> str:
    at = select(rows, section="concurrency", connections=GOAL_CONCURRENCY)
    figure, axes = plt.subplots(1, len(DYNAMIC), figsize=(12, 3.8), sharey=True)
    for axis, name in zip(axes, DYNAMIC, strict=True):
        bars = [
            ("Django", {"web": cpu_median(select(rows, section="in-process", path=name), "web")})
        ]
        for variant in VARIANTS:
            found = select(at, variant=variant, path=name)
            bars.append((variant, {s: cpu_median(found, s) for s in CONTAINERS[variant]}))
        for x, (variant, parts) in enumerate(bars):
            bottom = 0.0
            for service, value in parts.items():
                if value is None:
                    continue
                shade = {"db": 0.35, "nginx": 0.6, "tutorial-nginx": 0.6}.get(service, 1.0)
                axis.bar(x, value, bottom=bottom, color=COLOURS[variant], alpha=shade,
                         edgecolor="black", linewidth=0.5)  # fmt: skip
                if value > 0.12:
                    axis.text(x, bottom + value / 2, service.replace("tutorial-", ""),
                              ha="center", va="center", fontsize=7)  # fmt: skip
                bottom += value
        axis.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
        axis.set_title(f"{name} ({PATHS[name]})", fontsize=9)
        axis.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel("CPU ms per request")
    figure.suptitle(f"CPU per request by container, c={GOAL_CONCURRENCY} ({stamp})", fontsize=10)
    figure.tight_layout()
    figure.savefig(images / "cpu-per-request.png", dpi=90)
    plt.close(figure)
    return "cpu-per-request.png"


BEGIN, END = "<!-- benchmarks.run: begin -->", "<!-- benchmarks.run: end -->"


def write_docs(result: dict, args: argparse.Namespace, output: Path, stamp: str) -> None:
    images = output / "benchmarks"
    images.mkdir(parents=True, exist_ok=True)
    (images / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    written = plots(result["rows"], images, stamp)
    command = "tests/benchmarks/run" + (" --quick" if args.quick else "")
    section = [
        BEGIN,
        f"Measured {stamp} with `{command}` ({args.rounds} round(s) of {args.duration:g} s per "
        f"point; static file `{result['static_path']}`). Generated: edit "
        "`tests/benchmarks/run.py`, not this section.",
        "",
        "### Goals",
        "",
        *goals(result["rows"]),
        "",
        *[f"![{name}](benchmarks/{name})" for name in written],
        "",
        *tables(result["rows"]),
        END,
    ]
    document = output / "benchmarks.md"
    text = document.read_text() if document.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    document.write_text(before + "\n".join(section) + after)


def commit_stamp() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
        text=True, check=True,
    ).stdout.strip()  # fmt: skip
    today = datetime.datetime.now(tz=datetime.UTC).date().isoformat()
    return f"{today} at commit `{head}`" + (" plus uncommitted changes" if dirty else "")


@contextlib.contextmanager
def bench_project(env_overrides: dict[str, str]) -> Iterator[Bench]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-run-"))
    os.chmod(scratch, 0o755)  # noqa: S103 (tutorial-nginx's user reads its configuration here)
    bench = Bench(scratch, env_overrides)
    try:
        bench.up()
        yield bench
    finally:
        bench.project.down()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 3 s, 3 levels")
    parser.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per point (default 6, quick 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", help="wrk connection counts")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="cats")
    parser.add_argument("--in-process-requests", type=int, help="test-client requests per round")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="a .env line for the stack (compare a setting; the docs say the defaults)",
    )  # fmt: skip
    parser.add_argument(
        "--output", type=Path, default=REPO / "docs",
        help="where benchmarks.md and benchmarks/ are written (default docs/)",
    )  # fmt: skip
    parser.add_argument(
        "--report", type=Path, metavar="RESULTS",
        help="measure nothing: print the goals, tables and tail of a stored results.json",
    )  # fmt: skip
    args = parser.parse_args()
    if args.report:
        report(args.report)
        return
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or (3 if args.quick else 6)
    args.concurrency = tuple(args.concurrency or (QUICK_CONCURRENCY if args.quick else CONCURRENCY))
    args.in_process_requests = args.in_process_requests or (300 if args.quick else 1000)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    env_overrides = dict(item.split("=", 1) for item in args.env)

    stamp = commit_stamp()
    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {text}", file=sys.stderr, flush=True)

    with bench_project(env_overrides) as bench:
        log(f"project {bench.project.name} up")
        result = run(args, bench, log)
    result["arguments"] = {k: str(v) for k, v in vars(args).items()}
    result["stamp"] = stamp
    write_docs(result, args, args.output, stamp)
    print("\n".join(goals(result["rows"])))
    log("done")


if __name__ == "__main__":
    main()
