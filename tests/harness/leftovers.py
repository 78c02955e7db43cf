"""What a test run left on the engine: containers, networks and volumes carrying its id, and
a swarm it joined.

Compose resources are recognised by their project label (projects are named
`<run id>-...`), swarm stacks' by their namespace label (stacks are named the same way), plain
ones by the run label; a swarm by the run label on this node (tests/swarm/conftest.py puts it
there), and removed by leaving it. Used at the end of every engine test session
(engine_plugin) and of every tests/run; both fail the run when anything is found, after
removing it so the next run starts clean. A run that was killed never reaches its own check:
tests/run removes what any earlier run left before its first engine layer (`--earlier-runs`),
since a killed run's containers hold published ports and its swarm makes the swarm layer refuse
the engine.

CLI: python -m tests.harness.leftovers RUN_ID
     python -m tests.harness.leftovers --earlier-runs
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from tests.harness.docker import RUN_LABEL, docker

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
STACK_LABEL = "com.docker.stack.namespace"
# Every run's id (tests/harness/docker.py); compose projects and stacks are named `<run id>-...`.
TEST_RUN = re.compile(r"^tr[0-9a-f]{8}(-|$)")
KINDS = {
    "container": (["container", "ls", "--all"], ["container", "rm", "--force", "--volumes"]),
    "network": (["network", "ls"], ["network", "rm"]),
    "volume": (["volume", "ls"], ["volume", "rm", "--force"]),
}


def _any_run(owner: str) -> bool:
    return TEST_RUN.match(owner) is not None


def _swarm_made_by(is_run: Callable[[str], bool]) -> bool:
    """This engine is in a swarm whose node a test run labelled (tests/swarm/conftest.py)."""
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    if state != "active":
        return False
    labels = docker(
        "node", "inspect", "self", "--format", f'{{{{index .Spec.Labels "{RUN_LABEL}"}}}}',
        check=False,
    )  # fmt: skip
    return labels.returncode == 0 and is_run(labels.stdout.strip())


def _made_by(is_run: Callable[[str], bool]) -> list[tuple[str, str]]:
    """(kind, name) of everything on the engine whose run label, compose project or stack
    names a run that `is_run` accepts."""
    template = (
        f'{{{{.Name}}}}\t{{{{.Label "{COMPOSE_PROJECT_LABEL}"}}}}\t{{{{.Label "{RUN_LABEL}"}}}}'
        f'\t{{{{.Label "{STACK_LABEL}"}}}}'
    )
    found = [("swarm", "this engine's node")] if _swarm_made_by(is_run) else []
    for kind, (list_command, _) in KINDS.items():
        # `container ls` names the field Names; networks and volumes call it Name.
        fields = template.replace(".Name}", ".Names}") if kind == "container" else template
        for line in docker(*list_command, "--format", fields).stdout.splitlines():
            name, *owners = [*line.split("\t"), "", "", ""][:4]
            if any(is_run(owner) for owner in owners if owner):
                found.append((kind, name))
    return found


def find(run_id: str) -> list[tuple[str, str]]:
    """(kind, name) of everything this run left behind."""
    return _made_by(lambda owner: owner == run_id or owner.startswith(f"{run_id}-"))


def find_any_run() -> list[tuple[str, str]]:
    """(kind, name) of everything any test run left behind."""
    return _made_by(_any_run)


def remove(leftovers: list[tuple[str, str]]) -> None:
    # Leaving the swarm first removes its services (their containers) and overlay networks.
    if any(kind == "swarm" for kind, _ in leftovers):
        docker("swarm", "leave", "--force", check=False)
    for kind in KINDS:
        names = [name for k, name in leftovers if k == kind]
        if names:
            docker(*KINDS[kind][1], *names, check=False)


def main(argv: list[str]) -> int:
    if argv == ["--earlier-runs"]:
        earlier = find_any_run()
        for kind, name in earlier:
            print(f"  removing {kind} {name}, left by a run that was killed")
        remove(earlier)
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m tests.harness.leftovers RUN_ID | --earlier-runs", file=sys.stderr)
        return 2
    leftovers = find(argv[0])
    if not leftovers:
        print(f"  nothing left behind by run {argv[0]}")
        return 0
    print(f"run {argv[0]} left these behind (now removed):", file=sys.stderr)
    for kind, name in leftovers:
        print(f"  {kind} {name}", file=sys.stderr)
    remove(leftovers)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
