"""A container's memory as its limit counts it, that limit, the processes the kernel killed in
it for memory, and the CPU time it used, read from its cgroup on the VM, as docker stats does
but exact to the byte (docker stats prints rounded sizes) and with the kills, which Docker
reports only as a flag.

The cgroup is the container's init process's (/proc/PID/cgroup, PID from docker inspect),
under the VM's cgroup mounts (/proc/self/mountinfo):
  v2  memory.current less memory.stat's inactive_file (what the kernel reclaims first, as
      docker stats counts it), memory.max, memory.events' oom_kill; cpu.stat's usage_usec
  v1  memory.usage_in_bytes less memory.stat's total_inactive_file, memory.limit_in_bytes,
      memory.oom_control's oom_kill (kernel 4.13 and later); cpuacct.usage (nanoseconds)
A machine with both (hybrid) keeps the controllers in v1, where their lines name them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# v1's "no limit": the largest page-aligned counter, far above any machine's memory.
V1_UNLIMITED = 1 << 62


class CgroupError(Exception):
    """The container's cgroup cannot be read here; the message says why."""


@dataclass(frozen=True)
class Memory:
    used: int
    limit: int | None
    oom_kills: int


@dataclass(frozen=True)
class Usage:
    memory: Memory
    cpu_seconds: float


# The v1 controllers read here (v2 has them all in one hierarchy).
CONTROLLERS = frozenset({"memory", "cpuacct"})


@dataclass(frozen=True)
class Mount:
    root: str
    point: Path
    version: int
    # v1's, of CONTROLLERS; v2's is every one.
    controllers: frozenset[str] = CONTROLLERS


def mounts(mountinfo: str) -> list[Mount]:
    """The cgroup mounts that hold what is read here: cgroup2, and v1's memory and cpuacct
    hierarchies."""
    found = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, described = left.split(), right.split()
        if len(fields) < 5 or len(described) < 3:
            continue
        fstype, options = described[0], described[2].split(",")
        point = Path(fields[4].replace("\\040", " "))
        if fstype == "cgroup2":
            found.append(Mount(fields[3], point, 2))
        elif fstype == "cgroup" and CONTROLLERS.intersection(options):
            found.append(Mount(fields[3], point, 1, CONTROLLERS.intersection(options)))
    return found


def controller_cgroup(cgroup: str, found: list[Mount], controller: str) -> tuple[Path, int]:
    """The folder of `controller` (one of CONTROLLERS) for a process whose /proc/PID/cgroup is
    `cgroup`, and its cgroup version."""
    paths = {}
    for line in cgroup.splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and not controllers:
            paths[2] = path
        elif controller in controllers.split(","):
            paths[1] = path
    for version in (1, 2):
        path = paths.get(version)
        for mount in (m for m in found if m.version == version and controller in m.controllers):
            if path is not None and (path + "/").startswith(mount.root.rstrip("/") + "/"):
                relative = os.path.relpath(path, mount.root)
                return mount.point / relative, version
    raise CgroupError(f"no mounted cgroup holds its {controller} controller ({cgroup.strip()!r})")


def _fields(text: str) -> dict[str, int]:
    """`name value` lines (memory.stat, memory.events, memory.oom_control)."""
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            values[name] = int(value)
    return values


def read_memory(folder: Path, version: int) -> Memory:
    def read(name: str) -> str:
        return (folder / name).read_text()

    if version == 2:
        stat = _fields(read("memory.stat"))
        used = int(read("memory.current")) - stat.get("inactive_file", 0)
        limit_text = read("memory.max").strip()
        limit = None if limit_text == "max" else int(limit_text)
        kills = _fields(read("memory.events")).get("oom_kill", 0)
    else:
        stat = _fields(read("memory.stat"))
        used = int(read("memory.usage_in_bytes")) - stat.get("total_inactive_file", 0)
        limit_value = int(read("memory.limit_in_bytes"))
        limit = None if limit_value >= V1_UNLIMITED else limit_value
        kills = _fields(read("memory.oom_control")).get("oom_kill", 0)
    return Memory(max(used, 0), limit, kills)


def read_cpu_seconds(folder: Path, version: int) -> float:
    if version == 2:
        return _fields((folder / "cpu.stat").read_text())["usage_usec"] / 1e6
    return int((folder / "cpuacct.usage").read_text()) / 1e9


def container_usage(pid: int, container_id: str, proc: Path = Path("/proc")) -> Usage:
    """The memory and CPU time of the container whose init process is `pid`. Its cgroup's
    path must name the container (Docker's do): a PID from an engine on another machine
    (DOCKER_HOST) would read some other process here."""
    try:
        cgroup = (proc / str(pid) / "cgroup").read_text()
        found = mounts((proc / "self" / "mountinfo").read_text())
        folders = {c: controller_cgroup(cgroup, found, c) for c in ("memory", "cpuacct")}
        for folder, _ in folders.values():
            if container_id[:12] not in str(folder):
                raise CgroupError(
                    f"its process {pid} here is in {folder}, not the container's cgroup: is "
                    "the engine on another machine (DOCKER_HOST)?"
                )
        return Usage(read_memory(*folders["memory"]), read_cpu_seconds(*folders["cpuacct"]))
    except OSError as error:
        raise CgroupError(f"{error.filename}: {error.strerror}") from None
    except (KeyError, ValueError) as error:
        raise CgroupError(f"a cgroup file not as the kernel writes it: {error!r}") from None
