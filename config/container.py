"""What this container may use, read from the kernel rather than assumed: its CPUs (the
cgroup quota, else its CPU set; never the host's count) and the networks it is attached to.

config.gunicorn sizes its default worker count and its trusted proxies from these. nginx applies
the same CPU rule to its worker_processes in shell (nginx/render-site-config.sh,
worker_processes), since its image has no Python.
"""

import contextlib
import ipaddress
import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


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
