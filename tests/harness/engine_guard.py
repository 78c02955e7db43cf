"""Whether this engine is the tests' to use: it runs no container that a test run did not make.

The engine layers restart the daemon (a reboot), turn the engine into a swarm, and load it for
minutes: typed on a VM that serves the stack, that would take the site down. tests/run asks
this before any engine layer and stops with one line when the engine runs anything else.
A test run's containers carry its id: the run label, or a compose project or stack named
`tr<8 hex digits>-...` (tests/harness/docker.py, leftovers.py), a crashed run's included.

CLI: python -m tests.harness.engine_guard   (exit 1, with the reason, when the engine is not ours)
"""

from __future__ import annotations

import sys

from tests.harness.docker import RUN_LABEL, docker
from tests.harness.leftovers import COMPOSE_PROJECT_LABEL, STACK_LABEL, TEST_RUN


def foreign_containers() -> list[str]:
    """Names of the running containers no test run made."""
    template = "\t".join(
        f'{{{{.Label "{label}"}}}}' for label in (RUN_LABEL, COMPOSE_PROJECT_LABEL, STACK_LABEL)
    )
    listed = docker("container", "ls", "--format", "{{.Names}}\t" + template).stdout
    foreign = []
    for line in listed.splitlines():
        name, *owners = [*line.split("\t"), "", "", ""][:4]
        if not any(TEST_RUN.match(owner) for owner in owners):
            foreign.append(name)
    return foreign


def main() -> int:
    foreign = foreign_containers()
    if not foreign:
        return 0
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    print(
        f"engine: it runs containers tests/run did not make ({shown}); the engine layers "
        "restart its daemon, make it a swarm and load it: run them on a machine of their own "
        "(docs/testing.md, Where to run the tests)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
