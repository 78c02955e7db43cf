"""What a test run left on the engine: containers, networks and volumes carrying its id, and
a swarm it joined.

Compose resources are recognised by their project label (projects are named
`<run id>-...`), swarm stacks' by their namespace label (stacks are named the same way), plain
ones by the run label; a swarm by the run label on this node (tests/swarm/conftest.py puts it
there), and removed by leaving it. Used at the end of every engine test session
(engine_plugin) and of every tests/run; both fail the run when anything is found, after
removing it so the next run starts clean.

CLI: python -m tests.harness.leftovers RUN_ID
"""

from __future__ import annotations

import sys

from tests.harness.docker import RUN_LABEL, docker

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
STACK_LABEL = "com.docker.stack.namespace"
KINDS = {
    "container": (["container", "ls", "--all"], ["container", "rm", "--force", "--volumes"]),
    "network": (["network", "ls"], ["network", "rm"]),
    "volume": (["volume", "ls"], ["volume", "rm", "--force"]),
}


def _belongs_to(run_id: str, project: str, run_label: str, stack: str = "") -> bool:
    return run_label == run_id or any(name.startswith(f"{run_id}-") for name in (project, stack))


def _swarm_of(run_id: str) -> bool:
    """This engine is in a swarm that this run created."""
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    if state != "active":
        return False
    labels = docker("node", "inspect", "self", "--format", "{{json .Spec.Labels}}", check=False)
    return labels.returncode == 0 and f'"{RUN_LABEL}":"{run_id}"' in labels.stdout


def find(run_id: str) -> list[tuple[str, str]]:
    """(kind, name) of everything this run left behind."""
    template = (
        f'{{{{.Name}}}}\t{{{{.Label "{COMPOSE_PROJECT_LABEL}"}}}}\t{{{{.Label "{RUN_LABEL}"}}}}'
        f'\t{{{{.Label "{STACK_LABEL}"}}}}'
    )
    found = [("swarm", "this engine's node")] if _swarm_of(run_id) else []
    for kind, (list_command, _) in KINDS.items():
        # `container ls` names the field Names; networks and volumes call it Name.
        fields = template.replace(".Name}", ".Names}") if kind == "container" else template
        for line in docker(*list_command, "--format", fields).stdout.splitlines():
            name, project, run_label, stack = [*line.split("\t"), "", "", ""][:4]
            if _belongs_to(run_id, project, run_label, stack):
                found.append((kind, name))
    return found


def remove(leftovers: list[tuple[str, str]]) -> None:
    # Leaving the swarm first removes its services (their containers) and overlay networks.
    if any(kind == "swarm" for kind, _ in leftovers):
        docker("swarm", "leave", "--force", check=False)
    for kind in KINDS:
        names = [name for k, name in leftovers if k == kind]
        if names:
            docker(*KINDS[kind][1], *names, check=False)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.harness.leftovers RUN_ID", file=sys.stderr)
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
