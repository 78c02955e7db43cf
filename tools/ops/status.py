"""status: what runs (each service's containers, their versions and health), which release
nginx serves, the versions this VM can roll back to, and one verdict a monitoring check can
act on, as the exit status (the monitoring-plugin convention):

  0  healthy    every service runs, healthy where it has a health check
  1  degraded   the site serves (nginx, web and db each have a healthy container), but
                something else is wrong: a container unhealthy or stopped beside healthy ones,
                the worker or Redis down, nginx serving another release than .env names, or
                the running containers made from other compose files than COMPOSE_FILE's
  2  down       nginx, web or db has no healthy container: the site does not serve
  3  unknown    status could not be read (no engine answering, no compose)

`--json` prints the same as one JSON object on stdout instead of the steps (a check reads it).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools.ops.console import Console, OpsError
from tools.ops.history import History
from tools.ops.images import Images
from tools.ops.project import Project

STEPS = ("containers", "versions")
# Without one healthy container of each, the site does not serve.
ESSENTIAL = ("db", "web", "nginx")
# With compose.worker.yaml.
WORKER_SERVICES = ("redis", "worker")
HEALTHY, DEGRADED, DOWN, UNKNOWN = 0, 1, 2, 3
VERDICTS = {HEALTHY: "healthy", DEGRADED: "degraded", DOWN: "down", UNKNOWN: "unknown"}


@dataclass
class Report:
    release: str
    proxy: str
    active_release: str | None
    rollback_target: str | None
    web_images: list[str]
    services: dict[str, list[dict]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    code: int = HEALTHY

    @property
    def verdict(self) -> str:
        return VERDICTS[self.code]

    def worse(self, code: int, problem: str) -> None:
        self.code = max(self.code, code)
        self.problems.append(problem)

    def as_json(self) -> str:
        return json.dumps({"status": self.verdict, **asdict(self)}, sort_keys=True)


def read(project: Project, console: Console | None) -> Report:
    """The stack's state; `console` (when given) prints it as it is read."""

    def note(text: str) -> None:
        if console is not None:
            console.note(text)

    app = project.setting("APP_VERSION", "latest")
    proxy = project.setting("NGINX_VERSION", "latest")
    history = History(project.state_dir)
    previous = history.previous(app)
    images = Images(project)
    report = Report(
        release=app, proxy=proxy, active_release=project.active_release(),
        rollback_target=previous.app if previous else None,
        web_images=images.local_versions(images.names(app, proxy)["web"]),
    )  # fmt: skip
    services = list(ESSENTIAL)
    if project.has_service("worker"):
        services += WORKER_SERVICES
    for service in services:
        containers = [c for c in project.containers(service) if c.state != "exited"]
        report.services[service] = [
            {"name": c.name, "version": c.version, "state": c.state, "health": c.health}
            for c in containers
        ]
        for container in containers:
            note(f"{service}: {container.name} {container.version} {container.state} "
                 f"({container.health})")  # fmt: skip
        serving = [c for c in containers if c.serving]
        if not serving:
            note(f"{service}: no healthy container")
            report.worse(DOWN if service in ESSENTIAL else DEGRADED, f"{service}: none healthy")
        elif len(serving) < len(containers):
            names = ", ".join(c.name for c in containers if not c.serving)
            report.worse(DEGRADED, f"{service}: not healthy: {names}")
    if report.active_release is not None and report.active_release != app:
        report.worse(DEGRADED, f"nginx serves release {report.active_release}, .env names {app}")
    try:
        project.compose_files_check()
    except OpsError as error:
        report.worse(DEGRADED, str(error))
    return report


def status(project: Project, console: Console) -> tuple[str, int]:
    with console.step("containers"):
        report = read(project, console)
    with console.step("versions"):
        console.note(f"release {report.release}, proxy {report.proxy} (.env)")
        console.note(f"nginx serves release {report.active_release or '(nginx is not running)'}")
        console.note(f"web images on this VM: {', '.join(report.web_images) or 'none'}")
        console.note(f"rollback target: {report.rollback_target or 'none recorded'}")
    problems = f": {'; '.join(report.problems)}" if report.problems else ""
    rollback = report.rollback_target or "nothing"
    return (
        f"{report.verdict}{problems}; release {report.release}; rollback to {rollback}",
        report.code,
    )


def status_json(directory: Path) -> int:
    """The report as JSON on stdout; unknown (3), with the reason, when it cannot be read."""
    try:
        report = read(Project(directory), None)
    except OpsError as error:
        print(json.dumps({"status": VERDICTS[UNKNOWN], "problems": [str(error)]}), flush=True)
        return UNKNOWN
    print(report.as_json(), flush=True)
    return report.code
