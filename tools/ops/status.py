"""status: what runs (each service's containers, their versions and health), which release
nginx serves, and the versions this VM can roll back to."""

from __future__ import annotations

from tools.ops.console import Console
from tools.ops.history import History
from tools.ops.images import Images
from tools.ops.project import Project

SERVICES = ("db", "web", "nginx")
# With compose.worker.yaml.
WORKER_SERVICES = ("redis", "worker")


def status(project: Project, console: Console) -> str:
    with console.step("containers"):
        unhealthy = []
        services = list(SERVICES)
        if project.has_service("worker"):
            services += WORKER_SERVICES
        for service in services:
            containers = [c for c in project.containers(service) if c.state != "exited"]
            if not containers:
                console.note(f"{service}: no container")
                unhealthy.append(service)
            for container in containers:
                console.note(f"{service}: {container.name} {container.version} {container.state} "
                             f"({container.health})")  # fmt: skip
                if container.state != "running" or container.health not in ("healthy", "none"):
                    unhealthy.append(container.name)
    with console.step("versions"):
        app = project.setting("APP_VERSION", "latest")
        proxy = project.setting("NGINX_VERSION", "latest")
        console.note(f"release {app}, proxy {proxy} (.env)")
        console.note(f"nginx serves release {project.active_release() or '(nginx is not running)'}")
        history = History(project.state_dir)
        previous = history.previous(app)
        images = Images(project)
        web_image = images.names(app, proxy)["web"]
        available = images.local_versions(web_image)
        console.note(f"web images on this VM: {', '.join(available) or 'none'}")
        console.note(f"rollback target: {previous.app if previous else 'none recorded'}")
    health = "all healthy" if not unhealthy else f"not healthy: {', '.join(unhealthy)}"
    return f"release {app} ({health}); rollback to {previous.app if previous else 'nothing'}"
