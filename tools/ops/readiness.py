"""The one wait for containers to be ready, shared by deploy (a new release's containers) and
restore (web started again): each must be running and healthy, and a web container must also
answer its readiness probe (/readyz: the database reachable, the migrations applied) from inside
itself. A worker is ready when healthy: its consumer is connected to the broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tools.ops import commands
from tools.ops.project import Container, Project

READY_TIMEOUT_S = 180
POLL_S = 1


class NotReady(Exception):
    """`container` stopped, turned unhealthy, or was not ready in time (`why`)."""

    def __init__(self, container: Container, why: str) -> None:
        super().__init__(why)
        self.container = container
        self.why = why


def answers_ready(project: Project, container: Container) -> bool:
    probe = project.run(
        commands.in_container(container.id, *commands.READINESS), check=False, timeout=30
    )
    return probe.returncode == 0


def wait_ready(
    project: Project,
    pending: list[Container],
    current: Callable[[], list[Container]],
    timeout: float = READY_TIMEOUT_S,
) -> None:
    """Until every container of `pending` is ready; `current()` gives their present state.
    Raises NotReady for the first that stopped, is unhealthy, or is not ready in time."""
    deadline = time.monotonic() + timeout
    waiting = list(pending)
    while waiting:
        now = {c.id: c for c in current()}
        for container in list(waiting):
            state = now.get(container.id)
            if state is None or state.state in ("exited", "dead", "restarting"):
                raise NotReady(container, "stopped while starting")
            if state.health == "unhealthy":
                raise NotReady(container, "is unhealthy")
            if state.health == "healthy" and (
                container.service != "web" or answers_ready(project, container)
            ):
                waiting.remove(container)
        if waiting and time.monotonic() > deadline:
            raise NotReady(waiting[0], f"was not ready within {timeout:g} s")
        if waiting:
            time.sleep(POLL_S)
