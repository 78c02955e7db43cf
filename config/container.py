"""What this container may use, read from the kernel rather than assumed: its CPUs (the
cgroup quota, else its CPU set; never the host's count), its memory (the cgroup limit, else the
machine's), the size of its tmpfs mounts and the networks it is attached to; and the worker
count gunicorn runs in it.

config.gunicorn sizes its default worker count and its trusted proxies from these; the settings
size the photo checks' memory from them (PHOTO_CHECK_MEMORY_BYTES). nginx applies the same CPU
rule to its worker_processes in shell (nginx/render-site-config.sh, worker_processes), since its
image has no Python.
"""

import contextlib
import ipaddress
import math
import os
from pathlib import Path

from config.env import Env

CGROUP_ROOT = Path("/sys/fs/cgroup")
MOUNTS = Path("/proc/self/mounts")
# The count compose's web limits (mem_limit, pids_limit) and PostgreSQL's connections are sized
# for: docs/operations.md, Sizing. Bigger machines set GUNICORN_WORKERS and those limits together.
MAX_DEFAULT_WORKERS = 8


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """CPUs this container may use: its CPU quota (`docker run --cpus`, compose `cpus:`),
    else the CPUs it may be scheduled on. os.cpu_count() would report the whole host."""
    schedulable = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is None:
        return schedulable
    return max(1, min(schedulable, math.ceil(quota)))


def cgroup_cpu_quota(cgroup_root: Path) -> float | None:
    """The CFS quota in CPUs, or None when unlimited or unreadable (cgroup v2, then v1)."""
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup_root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


# What serves this process, named by config/gunicorn.py before the settings load: "wsgi
# THREADS" in gunicorn's wsgi workers (config.settings declares their database pool from it),
# unset in every other process.
SERVED_BY = "CATCOLLECTOR_SERVED_BY"


def default_workers(cpus: int) -> int:
    """Two processes per CPU: one process runs Python on at most one CPU (the GIL), and a
    second keeps that CPU busy while the first waits on the database. Never fewer than two,
    so a worker being recycled (max_requests) leaves another serving; never more than
    MAX_DEFAULT_WORKERS."""
    return min(2 * cpus, MAX_DEFAULT_WORKERS)


def gunicorn_workers(env: Env) -> int:
    """The worker processes gunicorn runs here: GUNICORN_WORKERS, else default_workers. Read
    by config.gunicorn, and by the settings, which keep memory for each."""
    return env.integer(
        "GUNICORN_WORKERS", default_workers(available_cpus()), minimum=1, maximum=256
    )


def memory_limit(cgroup_root: Path = CGROUP_ROOT) -> int:
    """Bytes this container may use: its cgroup memory limit (`docker run --memory`, compose
    `mem_limit`; cgroup v2, then v1), capped at the machine's memory, which is also the answer
    when no limit is set or readable (v1 reports "none" as a huge number)."""
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            value = (cgroup_root / name).read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            return min(int(value), physical)
        if value == "max":
            return physical
    return physical


def tmpfs_size(path: str, mounts: Path = MOUNTS) -> int:
    """The size of the tmpfs mounted at `path`, in bytes: memory its files may take, which
    counts against the container's memory limit. 0 when `path` is no tmpfs mount point."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return 0
    # The last mount at a path is the one in effect (paths with spaces are octal-escaped,
    # which the paths asked about here never have).
    types = [fields[2] for fields in map(str.split, lines) if fields[1:2] == [path]]
    if not types or types[-1] != "tmpfs":
        return 0
    stats = os.statvfs(path)
    return stats.f_blocks * stats.f_frsize


def attached_networks(proc_net: Path = Path("/proc/net")) -> list[str]:
    """The subnets this container's interfaces sit on.

    gunicorn's port is published to no one, so only containers on these networks (nginx)
    reach it: by default they are the hops whose X-Forwarded-For the access log believes.
    IPv4: the routes without a gateway, the default route left out. IPv6: the global
    addresses with their prefix. Each file is missing where its protocol is off.
    """
    networks: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
    with contextlib.suppress(OSError):
        for line in (proc_net / "route").read_text().splitlines()[1:]:
            fields = line.split()
            # Little-endian hex numbers: destination, gateway, mask.
            destination, gateway, mask = (
                int(fields[i], 16).to_bytes(4, "little") for i in (1, 2, 7)
            )
            prefix = bin(int.from_bytes(mask)).count("1")
            if not any(gateway) and prefix:
                networks.add(ipaddress.IPv4Network((destination, prefix)))
    with contextlib.suppress(OSError):
        for line in (proc_net / "if_inet6").read_text().splitlines():
            address, _index, prefix, scope = line.split()[:4]
            if int(scope, 16) == 0:  # global; link-local (0x20) and loopback (0x10) left out
                interface = ipaddress.IPv6Interface((int(address, 16), int(prefix, 16)))
                networks.add(interface.network)
    return sorted(str(network) for network in networks)
