"""What Django's request metrics cost: CPU per request with config.metrics' middleware on and
off, and the size of one process's metrics files.

Run from the repo root with the test venv and Debian's PostgreSQL server binaries; no Docker:

    .venv/bin/python -m tests.benchmarks.metrics_cost [--rounds 5] [--requests 4000] [--control]

Each round and path is a fresh process running Django's test client in-process against a
throwaway cluster with 40 cats, with the headers nginx sends and the metrics files in a
folder of its own, as gunicorn's workers have them (PROMETHEUS_MULTIPROC_DIR). One client,
four middleware chains built from MIDDLEWARE, with ("on") and without ("off") config.metrics'
two middlewares, in the order on, off, off, on; after a warm-up and a gc.freeze() (as
gunicorn's master does) the requests go in blocks of 50, chain after chain, so the variants
share the process, its client and the machine's moments. (Two clients, two processes, or two
chains built one after the other differed by more than the metrics cost.) CPU is the
process's (time.process_time). The table gives medians over the rounds, of each variant and
of each round's difference and ratio; the budget is 3 % (docs/operations.md, Monitoring).
`--control` builds every chain without metrics: what the table shows when there is no
difference.

The two middlewares are also timed alone, around a view that does nothing: their own cost,
without the noise of a whole request. Then one process records a request for every view of
the URLconf with two methods and three statuses, and the sizes of its files are printed: what
one worker's files take on the metrics tmpfs (compose.yaml). Not collected by pytest.
"""

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.db_connections import host_cluster
from tests.benchmarks.profile_web import NGINX_HEADERS, django_env, prepare
from tests.harness import REPO

PATHS = ("/", "/api/cats/?page_size=20", "/admin/login/")
TMPFS = "/dev/shm"  # a tmpfs on every Linux host
BUDGET = 0.03

MEASURE = """
import gc, json, sys, time
import django
django.setup()
from django.conf import settings
from django.test import Client
path, n, control = sys.argv[1], int(sys.argv[3]), sys.argv[4] == "control"
client = Client(headers=json.loads(sys.argv[2]))
handler = client.handler
# What BaseHandler.load_middleware builds from MIDDLEWARE: one set per chain, swapped in.
BUILT = ("_middleware_chain", "_view_middleware", "_template_response_middleware",
         "_exception_middleware")
everything = list(settings.MIDDLEWARE)
# Built in the order on, off, off, on: whatever the order of building costs, both pay it.
chains = []
for variant in ("on", "off", "off", "on"):
    metrics = variant == "on" and not control
    settings.MIDDLEWARE = [m for m in everything if metrics or not m.startswith("config.metrics.")]
    handler.load_middleware()
    chains.append((variant, {name: getattr(handler, name) for name in BUILT}))

def use(chain):
    for name, value in chain.items():
        setattr(handler, name, value)

for _, chain in chains:
    use(chain)
    for _ in range(200):
        assert client.get(path).status_code == 200
# As gunicorn's master does before it forks (config.gunicorn, when_ready): what exists now is
# never scanned again, so no chain's objects cost the collector more than another's.
gc.collect()
gc.freeze()
spent = {"on": 0.0, "off": 0.0}
for block in range(n // (2 * BLOCK)):
    for variant, chain in chains if block % 2 else reversed(chains):
        use(chain)
        start = time.process_time()
        for _ in range(BLOCK):
            client.get(path)
        spent[variant] += time.process_time() - start
print(json.dumps({variant: 1e6 * seconds / n for variant, seconds in spent.items()}))
""".replace("BLOCK", "50")

ALONE = """
import sys, time
import django
django.setup()
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import resolve
from config.metrics import MetricsEndpointMiddleware, RequestMetricsMiddleware
request = RequestFactory().get("/")
request.resolver_match = resolve("/")
response = HttpResponse()
def view(request):
    return response
both = MetricsEndpointMiddleware(RequestMetricsMiddleware(view))
n = int(sys.argv[1])
for _ in range(1000):
    both(request)
spent = {}
for name, call in (("view", view), ("both", both), ("view", view), ("both", both)):
    start = time.process_time()
    for _ in range(n):
        call(request)
    spent[name] = spent.get(name, 0.0) + time.process_time() - start
print(1e6 * (spent["both"] - spent["view"]) / (2 * n))
"""

FILL = """
import django
django.setup()
from django.urls import URLPattern, URLResolver, get_resolver
from config.metrics import DURATION, IN_PROGRESS, REQUESTS

def names(resolver, prefix=""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            space = f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix
            yield from names(pattern, space)
        elif isinstance(pattern, URLPattern):
            yield prefix + (pattern.name or pattern.lookup_str)

views = sorted(set(names(get_resolver()))) + ["<unresolved>"]
IN_PROGRESS.inc()
for view in views:
    for method in ("GET", "POST"):
        DURATION.labels(view, method).observe(0.01)
        for status in ("200", "302", "404"):
            REQUESTS.labels(view, method, status).inc()
print(len(views))
"""


def cpu_us(env: dict[str, str], path: str, requests: int, folder: Path, mode: str) -> dict:
    """CPU µs per request of each variant, measured in one process in alternating blocks."""
    folder.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, path, json.dumps(NGINX_HEADERS), str(requests), mode],
        cwd=REPO,
        env={**env, "DJANGO_LOG_LEVEL": "WARNING", "PROMETHEUS_MULTIPROC_DIR": str(folder)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(run.stdout.splitlines()[-1])


def alone_us(env: dict[str, str], folder: Path) -> float:
    """The two middlewares around a view that does nothing: their own CPU µs per request."""
    folder.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", ALONE, "100000"],
        cwd=REPO,
        env={**env, "PROMETHEUS_MULTIPROC_DIR": str(folder)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(run.stdout.split()[-1])


def file_sizes(env: dict[str, str], folder: Path) -> tuple[int, list[tuple[str, int, int]]]:
    """Views recorded, and each file's (name, apparent bytes, allocated bytes)."""
    folder.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", FILL],
        cwd=REPO,
        env={**env, "PROMETHEUS_MULTIPROC_DIR": str(folder)},
        capture_output=True,
        text=True,
        check=True,
    )
    sizes = [
        (re.sub(r"_\d+\.db$", "_<pid>.db", path.name), path.stat().st_size,
         path.stat().st_blocks * 512)
        for path in sorted(folder.glob("*.db"))
    ]  # fmt: skip
    return int(run.stdout), sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=4000, help="per path and variant")
    parser.add_argument(
        "--control", action="store_true", help="both variants without metrics: the noise floor"
    )
    args = parser.parse_args()
    mode = "control" if args.control else "compare"

    cluster = host_cluster()
    scratch = Path(tempfile.mkdtemp(prefix="cats-metrics-"))
    # The metrics files on a tmpfs, as web's are (a disk would add its page writebacks).
    files = Path(tempfile.mkdtemp(prefix="cats-metrics-", dir=TMPFS))
    env = django_env(cluster, scratch)
    results: dict[tuple[str, str], list[float]] = {}
    try:
        prepare(env, 40)
        for round_number in range(args.rounds):
            for path in PATHS:
                folder = files / f"{round_number}-{PATHS.index(path)}"
                values = cpu_us(env, path, args.requests, folder, mode)
                for variant, value in values.items():
                    results.setdefault((path, variant), []).append(value)
                print(
                    f"round {round_number + 1} {path:26} off {values['off']:7.1f} "
                    f"on {values['on']:7.1f} µs/req",
                    file=sys.stderr,
                    flush=True,
                )
        alone = [alone_us(env, files / f"alone-{n}") for n in range(args.rounds)]
        views, sizes = file_sizes(env, files / "all-views")
    finally:
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(files, ignore_errors=True)

    print(
        f"\nCPU per request, Django's test client in-process, {args.requests} requests x "
        f"{args.rounds} rounds, medians"
        + (" (control: the chains called on and off both have no metrics)" if args.control else "")
        + "\n"
    )
    print("| path | metrics off µs | metrics on µs | added µs | on / off | within 3 % |")
    print("|---|---:|---:|---:|---:|---|")
    for path in PATHS:
        offs, ons = results[path, "off"], results[path, "on"]
        # Each round's two variants ran in one process: compared round by round.
        added = statistics.median(on - off for on, off in zip(ons, offs, strict=True))
        ratio = statistics.median(on / off for on, off in zip(ons, offs, strict=True))
        print(
            f"| `{path}` | {statistics.median(offs):.0f} | {statistics.median(ons):.0f} | "
            f"{added:.0f} | {ratio:.3f} | {'yes' if ratio <= 1 + BUDGET else 'no'} |"
        )
    print(
        f"\nThe two middlewares alone, around a view that does nothing: "
        f"{statistics.median(alone):.1f} µs per request (median of {args.rounds} runs of 100,000)"
    )
    print(f"\nOne process's metrics files with every view ({views}) x 2 methods x 3 statuses\n")
    print("| file | apparent KiB | allocated KiB |")
    print("|---|---:|---:|")
    for name, apparent, allocated in sizes:
        print(f"| `{name}` | {apparent / 1024:.0f} | {allocated / 1024:.0f} |")
    total = sum(allocated for _, _, allocated in sizes)
    print(f"| all | {sum(a for _, a, _ in sizes) / 1024:.0f} | {total / 1024:.0f} |")


if __name__ == "__main__":
    main()
