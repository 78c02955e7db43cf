"""Every docker and compose command the verbs run, built in one place (as Kamal's commands/).

Compose commands run in the project's folder, so compose reads the operator's .env there
(COMPOSE_FILE, COMPOSE_PROJECT_NAME and every setting) exactly as a hand-typed `docker compose`
would. A verb never builds or pulls through `up` or `run` (`--no-build --pull never`): images
are made or fetched only in the step that says so (tools/ops/images.py).
"""

from __future__ import annotations

from collections.abc import Iterable

DOCKER = "docker"
NO_IMAGES = ("--no-build", "--pull", "never")

# The web image's own scripts (scripts/), which the verbs run in its containers.
PUBLISH = ("python", "/app/scripts/publish_release.py")
MIGRATE = ("python", "/app/scripts/migrate.py")
PRUNE_RELEASES = ("python", "/app/scripts/prune_releases.py")
UNKNOWN_MIGRATIONS = ("python", "/app/scripts/unknown_migrations.py")
READINESS = ("python", "/app/scripts/healthcheck.py", "/readyz")
MEDIA = ("python", "/app/scripts/media_volume.py")
MAINTENANCE = ("python", "/app/scripts/maintenance.py")


def compose(*args: str) -> list[str]:
    return [DOCKER, "compose", *args]


def up(
    *services: str,
    wait: bool = False,
    no_deps: bool = False,
    no_recreate: bool = False,
    scale: dict[str, int] | None = None,
) -> list[str]:
    """`up --detach` of `services` (all when none) from images already on this VM."""
    flags = ["--detach", *NO_IMAGES]
    flags += ["--wait"] if wait else []
    flags += ["--no-deps"] if no_deps else []
    flags += ["--no-recreate"] if no_recreate else []
    for service, count in (scale or {}).items():
        flags += ["--scale", f"{service}={count}"]
    return compose("up", *flags, *services)


# A one-off container: removed when it ends, nothing it depends on started, the image as on the
# VM (never pulled), no terminal.
ONE_OFF = ("run", "--rm", "--no-deps", "--pull", "never", "-T")


def one_off(
    service: str, *command: str, mounts: Iterable[str] = (), entrypoint: str | None = None
) -> list[str]:
    """A one-off container of `service` (its image, volumes, networks and environment), without
    starting what it depends on, removed when it ends; no terminal. `mounts` adds read-only bind
    mounts (HOST:CONTAINER): a file is handed over that way, never piped to `run`'s stdin, which
    compose can leave unforwarded when the container starts before it attaches (the one-off then
    waits for input forever)."""
    volumes = [arg for mount in mounts for arg in ("--volume", f"{mount}:ro")]
    other = ["--entrypoint", entrypoint] if entrypoint is not None else []
    return compose(*ONE_OFF, *volumes, *other, service, *command)


def in_service(service: str, *command: str) -> list[str]:
    """`command` in the running container of `service`."""
    return compose("exec", "-T", service, *command)


def in_service_as(service: str, user: str, *command: str) -> list[str]:
    return compose("exec", "-T", "--user", user, service, *command)


def one_off_with_profile(profile: str, service: str, *command: str) -> list[str]:
    """A one-off container of a service that only runs on demand (compose profile `profile`)."""
    return compose("--profile", profile, *ONE_OFF, service, *command)


def one_off_as_root(service: str, entrypoint: str, *command: str) -> list[str]:
    """A one-off container of `service` with another entrypoint, as root (which it drops)."""
    return compose(*ONE_OFF, "--user", "0:0", "--entrypoint", entrypoint, service, *command)


def stop_service(service: str) -> list[str]:
    return compose("stop", service)


def start_service(service: str) -> list[str]:
    return compose("start", service)


def config_json(*, services_only: bool = False) -> list[str]:
    return compose("config", "--services") if services_only else compose(
        "config", "--format", "json"
    )  # fmt: skip


def config_hash(service: str) -> list[str]:
    """compose's hash of the service's configuration (it labels each container with it)."""
    return compose("config", "--hash", service)


def service_containers(service: str) -> list[str]:
    """The ids of `service`'s containers, running or not."""
    return compose("ps", "--all", "--quiet", service)


def project_containers(project: str) -> list[str]:
    """The ids of every container compose made for `project`, whichever files define it now."""
    return [
        DOCKER,
        "ps",
        "--all",
        "--quiet",
        "--filter",
        f"label=com.docker.compose.project={project}",
    ]


def project_objects(kind: str, project: str) -> list[str]:
    """The names of every network or volume (`kind`) compose made for `project`."""
    return [DOCKER, kind, "ls", "--format", "{{.Name}}", "--filter",
            f"label=com.docker.compose.project={project}"]  # fmt: skip


def remove_networks(names: Iterable[str]) -> list[str]:
    return [DOCKER, "network", "rm", *names]


def inspect(*ids: str) -> list[str]:
    return [DOCKER, "container", "inspect", *ids]


def in_container(container: str, *command: str) -> list[str]:
    return [DOCKER, "exec", container, *command]


def stop(ids: Iterable[str]) -> list[str]:
    """Stop containers, each given its stop_grace_period for what it is doing."""
    return [DOCKER, "stop", *ids]


def remove(ids: Iterable[str], *, force: bool = False) -> list[str]:
    return [DOCKER, "rm", *(["--force"] if force else []), *ids]


def logs(container: str, *, tail: int | None = None, timestamps: bool = False) -> list[str]:
    flags = (["--tail", str(tail)] if tail is not None else []) + (
        ["--timestamps"] if timestamps else []
    )
    return [DOCKER, "logs", *flags, container]


def engine_version() -> list[str]:
    return [DOCKER, "version", "--format", "{{.Server.Version}}"]


def compose_version() -> list[str]:
    return compose("version", "--short")


def volume_inspect(volume: str) -> list[str]:
    return [DOCKER, "volume", "inspect", volume]


def volume_rm(volume: str) -> list[str]:
    return [DOCKER, "volume", "rm", "--force", volume]


def image_id(image: str) -> list[str]:
    return [DOCKER, "image", "inspect", "--format", "{{.Id}}", image]


def image_tags(repository: str) -> list[str]:
    return [DOCKER, "image", "ls", "--format", "{{.Tag}}", repository]


def remove_image(image: str) -> list[str]:
    return [DOCKER, "image", "rm", image]


def pull(image: str) -> list[str]:
    return [DOCKER, "pull", image]


def build(service: str, *, pull_base: bool = False) -> list[str]:
    """`compose build` of a service: its Dockerfile, with the newest base image when asked."""
    return compose("build", *(["--pull"] if pull_base else []), service)
