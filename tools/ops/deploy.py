"""deploy and rollback: a new release beside the running one, switched to once it is ready.

The steps, each a method with one way to fail:
  check    versions, the running release (A) and how many web containers it has (N)
  images   the release's images (B) on this VM: present, built from the checkout, or pulled
  publish  B's static files and nginx templates into the site volume, beside A's
  migrate  B's migrations, once, while A serves (they must be backward compatible)
  start    N web containers of B beside A's; nginx sends them nothing yet. With the worker
           (compose.worker.yaml), M workers of B beside A's too (at least one)
  ready    every B container healthy and ready (database, migrations); B's workers healthy
  switch   B becomes the active release: nginx reloads (or, for a new proxy, is replaced)
  retire   A's containers stop once nginx's previous workers have finished their requests;
           A's workers finish their tasks or hand them back to the queue, which B's work off
  record   .env names B, .ops/history gains it, old images and releases are pruned
A failure before `retire` removes B's containers and leaves A active: A serves throughout.
On a VM where nothing runs yet, `images` is followed by one `up` of the whole stack.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from tools.ops.console import Console, OpsError
from tools.ops.history import Entry, History
from tools.ops.images import Images, check_version, checkout_version, proxy_version
from tools.ops.project import Container, Project

STEPS = ("check", "images", "publish", "migrate", "start", "ready", "switch", "retire", "record")
FRESH_STEPS = ("check", "images", "up", "record")
READY_TIMEOUT_S = 180
POLL_S = 1
DEFAULT_KEEP_VERSIONS = 5
PUBLISH = ("python", "/app/scripts/publish_release.py")
MIGRATE = ("python", "/app/scripts/migrate.py")
READINESS = ("python", "/app/scripts/healthcheck.py", "/readyz")


@dataclass(frozen=True)
class Release:
    app: str
    proxy: str

    @property
    def env(self) -> dict[str, str]:
        return {"APP_VERSION": self.app, "NGINX_VERSION": self.proxy}


class Deployment:
    """One deploy of `target` in `project`; `source` says where missing images come from:
    'build' (the checkout), 'pull' (the registry) or None (they must be on this VM)."""

    def __init__(self, project: Project, console: Console, target: Release, source: str | None):
        self.project = project
        self.console = console
        self.target = target
        self.source = source
        self.images = Images(project)
        self.history = History(project.state_dir)
        self.current: Release | None = None
        self.running: list[Container] = []
        self.started: list[Container] = []
        # The worker's containers (compose.worker.yaml), when the compose files define it.
        self.with_worker = False
        self.workers_running: list[Container] = []
        self.workers_started: list[Container] = []
        self.switched = False
        self.nginx_replaced = False

    # --- the steps --------------------------------------------------------------------------

    def check(self) -> None:
        engine, compose = self.project.check_versions()
        self.console.note(f"Docker Engine {engine}, compose {compose}")
        recorded = self.project.setting("APP_VERSION", "latest")
        app = self.project.active_release() or recorded
        if app != recorded:
            # A deploy stopped between its switch and its record: what nginx serves counts.
            self.console.note(f"{app} is active although .env names {recorded}")
        web = [c for c in self.project.containers("web") if c.state == "running"]
        strays = [c for c in web if c.version != app]
        if strays:
            # An unfinished deploy's containers: not active, so nginx sends them nothing.
            self.console.note(f"removing {len(strays)} web container(s) of an unfinished deploy")
            self.project.docker("rm", "--force", *[c.id for c in strays])
        self.running = [c for c in web if c.version == app]
        self.with_worker = self.project.has_service("worker")
        if self.with_worker:
            workers = [c for c in self.project.containers("worker") if c.state == "running"]
            strays = [c for c in workers if c.version != app]
            if strays:
                # Stopped, not killed: a task they hold goes back to the queue.
                self.console.note(f"stopping {len(strays)} worker(s) of an unfinished deploy")
                self.project.docker("stop", *[c.id for c in strays])
                self.project.docker("rm", "--force", *[c.id for c in strays])
            self.workers_running = [c for c in workers if c.version == app]
        if not self.running:
            self.console.note(f"nothing runs yet: {self.target.app} brings the stack up")
            return
        nginx = self.project.containers("nginx")
        proxy = nginx[0].version if nginx else self.project.setting("NGINX_VERSION", "latest")
        self.current = Release(app, proxy)
        if self.history.latest_of(app) is None:
            self.history.append(app, proxy)
        self.console.note(f"{app} serves with {len(self.running)} web container(s)")
        if app == self.target.app:
            raise OpsError(f"{app} already serves; nothing to deploy")

    def ensure_images(self) -> None:
        names = self.images.names(self.target.app, self.target.proxy)
        for service in ("web", "nginx"):
            image = names[service]
            if self.images.exists(image):
                self.console.note(f"{image}: on this VM")
                continue
            # The proxy is always buildable from the checkout; the release, when asked to.
            source = self.source if service == "web" else (self.source or "build")
            if source == "pull":
                self.console.note(f"{image}: pulling")
                self.images.pull(service, self.target.app, self.target.proxy)
            elif source == "build":
                self.console.note(f"{image}: building from {self.project.directory}")
                self.images.build(service, self.target.app, self.target.proxy)
            else:
                raise OpsError(
                    f"{image} is not on this VM; build it from this checkout "
                    f"(./ops deploy {self.target.app} --build) or pull it "
                    f"(./ops deploy {self.target.app} --pull)"
                )

    def up(self) -> None:
        self.project.compose(
            "up", "--detach", "--wait", "--no-build", "--pull", "never",
            env=self.target.env, what="docker compose up", timeout=READY_TIMEOUT_S + 300,
        )  # fmt: skip

    def publish(self) -> None:
        output = self.run_release("publish", *PUBLISH, release=self.target)
        self.console.note(output)

    def migrate(self) -> None:
        try:
            self.run_release("web", *MIGRATE, release=self.target)
        except OpsError as error:
            raise OpsError(
                f"{self.target.app}'s migrations failed; {self.current_app} still serves, "
                "nothing else changed",
                error.details,
            ) from None

    def start(self) -> None:
        if self.with_worker:
            # The broker's password, which a stack whose first release predates the worker has
            # not got yet; B's web reads it too. init-secrets keeps the secrets it finds.
            self.console.note(self.run_release("init-secrets", release=self.target))
        count = len(self.running)
        self.project.compose(
            "up", "--detach", "--no-deps", "--no-recreate", "--no-build", "--pull", "never",
            "--scale", f"web={2 * count}", "web",
            env=self.target.env, what="starting the new web containers",
        )  # fmt: skip
        self.started = self.containers_of(self.target.app)
        self.console.note(f"{len(self.started)} web container(s) of {self.target.app} started")
        if self.with_worker:
            self.start_workers()

    def start_workers(self) -> None:
        """B's workers beside A's: both take tasks from the queue until A's retire. The broker
        is started first when the worker is new to this stack (its override just added)."""
        self.project.compose(
            "up", "--detach", "--wait", "--no-deps", "--no-recreate", "--no-build",
            "--pull", "never", "redis", env=self.target.env, what="starting the broker",
            timeout=READY_TIMEOUT_S,
        )  # fmt: skip
        count = max(1, len(self.workers_running))
        self.project.compose(
            "up", "--detach", "--no-deps", "--no-recreate", "--no-build", "--pull", "never",
            "--scale", f"worker={len(self.workers_running) + count}", "worker",
            env=self.target.env, what="starting the new workers",
        )  # fmt: skip
        self.workers_started = self.containers_of(self.target.app, "worker")
        self.console.note(f"{len(self.workers_started)} worker(s) of {self.target.app} started")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = list(self.started) + list(self.workers_started)
        while waiting:
            current = {
                c.id: c
                for service in {c.service for c in waiting}
                for c in self.containers_of(self.target.app, service)
            }
            for container in list(waiting):
                state = current.get(container.id)
                if state is None or state.state in ("exited", "dead", "restarting"):
                    raise self.not_ready(container, "stopped while starting")
                if state.health == "unhealthy":
                    raise self.not_ready(container, "is unhealthy")
                # A worker is ready when healthy: its consumer is connected to the broker.
                if state.health == "healthy" and (
                    container.service == "worker" or self.answers_ready(container)
                ):
                    waiting.remove(container)
            if waiting and time.monotonic() > deadline:
                raise self.not_ready(waiting[0], f"was not ready within {READY_TIMEOUT_S} s")
            if waiting:
                time.sleep(POLL_S)
        started = len(self.started) + len(self.workers_started)
        self.console.note(f"{started} container(s) healthy and ready")

    def switch(self) -> None:
        self.run_release("publish", *PUBLISH, "--activate", release=self.target)
        self.switched = True
        nginx = self.project.containers("nginx")
        wanted = self.images.image_id(
            self.images.names(self.target.app, self.target.proxy)["nginx"]
        )
        if nginx and nginx[0].image_id == wanted:
            reloaded = self.project.compose(
                "exec", "-T", "nginx", "reload-site", what="nginx reload-site", timeout=120
            )
            self.console.note(reloaded.stdout.strip())
            return
        started = time.monotonic()
        self.project.compose(
            "up", "--detach", "--wait", "--no-deps", "--no-build", "--pull", "never", "nginx",
            env=self.target.env, what="replacing nginx", timeout=READY_TIMEOUT_S,
        )  # fmt: skip
        self.nginx_replaced = True
        self.console.note(f"nginx replaced by proxy {self.target.proxy} in "
                          f"{time.monotonic() - started:.1f} s")  # fmt: skip

    def retire(self) -> None:
        ids = [c.id for c in self.running]
        # docker stop waits up to the container's stop_grace_period for requests in flight.
        self.project.docker("stop", *ids, what="stopping the previous web containers")
        self.project.docker("rm", *ids, what="removing the previous web containers")
        self.console.note(f"{len(ids)} web container(s) of {self.current_app} stopped and removed")
        if self.workers_running:
            # A worker's stop: running tasks get the soft shutdown's time to finish, the rest
            # go back to the queue (compose.worker.yaml); B's workers take them.
            workers = [c.id for c in self.workers_running]
            self.project.docker("stop", *workers, what="stopping the previous workers")
            self.project.docker("rm", *workers, what="removing the previous workers")
            self.console.note(f"{len(workers)} worker(s) of {self.current_app} stopped and removed")

    def record(self) -> None:
        self.project.set_settings(self.target.env)
        self.history.append(self.target.app, self.target.proxy)
        keep = self.history.kept(self.keep_versions())
        removed = self.prune_images(keep)
        pruned = self.run_release(
            "publish", "python", "/app/scripts/prune_releases.py", *[e.app for e in keep],
            release=self.target,
        )  # fmt: skip
        self.console.note(f".env: APP_VERSION={self.target.app} NGINX_VERSION={self.target.proxy}")
        self.console.note(f"kept versions {', '.join(e.app for e in keep)}; images removed: "
                          f"{', '.join(removed) or 'none'}; {pruned}")  # fmt: skip

    # --- undoing ----------------------------------------------------------------------------

    def undo(self) -> None:
        """Back to A as it was: A active again, nginx on A's proxy, B's containers gone."""
        if self.current is None:
            return
        if self.switched:
            self.run_release("publish", *PUBLISH, "--activate", release=self.current)
            if self.nginx_replaced:
                self.project.compose(
                    "up", "--detach", "--wait", "--no-deps", "--no-build", "--pull", "never",
                    "nginx", env=self.current.env, check=False, timeout=READY_TIMEOUT_S,
                )  # fmt: skip
            else:
                self.project.compose("exec", "-T", "nginx", "reload-site", check=False)
        leftovers = self.containers_of(self.target.app)
        if leftovers:
            self.project.docker("rm", "--force", *[c.id for c in leftovers], check=False)
        workers = self.containers_of(self.target.app, "worker") if self.with_worker else []
        if workers:
            # Stopped first: a task one of them holds goes back to the queue for A's workers.
            self.project.docker("stop", *[c.id for c in workers], check=False)
            self.project.docker("rm", "--force", *[c.id for c in workers], check=False)

    # --- helpers ----------------------------------------------------------------------------

    @property
    def current_app(self) -> str:
        return self.current.app if self.current else "nothing"

    def run_release(self, service: str, *command: str, release: Release) -> str:
        """A one-off container of `service` in `release`'s image; its last line of output
        (the scripts' result; log lines come before it)."""
        result = self.project.compose(
            "run", "--rm", "--no-deps", "-T", service, *command,
            env=release.env, what=f"{release.app}: {' '.join(command[1:2]) or service}",
        )  # fmt: skip
        return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""

    def containers_of(self, app: str, service: str = "web") -> list[Container]:
        return [c for c in self.project.containers(service) if c.version == app]

    def answers_ready(self, container: Container) -> bool:
        probe = self.project.docker("exec", container.id, *READINESS, check=False, timeout=30)
        return probe.returncode == 0

    def not_ready(self, container: Container, why: str) -> OpsError:
        kind = "web container" if container.service == "web" else container.service
        return OpsError(
            f"{self.target.app}'s {kind} {container.name} {why}; {self.current_app} "
            "still serves. Its last log lines:",
            self.project.logs(container),
        )

    def keep_versions(self) -> int:
        value = self.project.setting("OPS_KEEP_VERSIONS", str(DEFAULT_KEEP_VERSIONS))
        if not value.isdigit() or not 2 <= int(value) <= 100:
            raise OpsError(f"OPS_KEEP_VERSIONS={value!r}: use a whole number from 2 to 100")
        return int(value)

    def prune_images(self, keep: list[Entry]) -> list[str]:
        removed = []
        names = self.images.names(self.target.app, self.target.proxy)
        kept_tags = {"web": {e.app for e in keep}, "nginx": {e.proxy for e in keep}}
        for service, image in names.items():
            repository = image.rsplit(":", 1)[0]
            for tag in self.images.local_versions(image):
                if tag not in kept_tags[service] and self.images.remove(f"{repository}:{tag}"):
                    removed.append(f"{repository}:{tag}")
        return removed

    # --- the verb ---------------------------------------------------------------------------

    def run(self) -> str:
        with self.console.step("check"):
            self.check()
        if self.current is None:
            self.console.steps = list(FRESH_STEPS)
            return self.run_fresh()
        with self.console.step("images"):
            self.ensure_images()
        try:
            for name, action in (
                ("publish", self.publish), ("migrate", self.migrate), ("start", self.start),
                ("ready", self.wait_ready), ("switch", self.switch),
            ):  # fmt: skip
                with self.console.step(name):
                    action()
        except (OpsError, KeyboardInterrupt):
            self.undo()
            raise
        with self.console.step("retire"):
            self.retire()
        with self.console.step("record"):
            self.record()
        how = "nginx replaced (new proxy)" if self.nginx_replaced else "nginx reloaded"
        return (
            f"{self.target.app} serves (was {self.current_app}) with {len(self.started)} web "
            f"container(s), {how}; ./ops rollback returns to {self.current_app}"
        )

    def run_fresh(self) -> str:
        with self.console.step("images"):
            self.ensure_images()
        with self.console.step("up"):
            self.up()
        with self.console.step("record"):
            self.record()
        return f"{self.target.app} serves; the stack is up"


def deploy(project: Project, console: Console, version: str | None, source: str | None) -> str:
    app = check_version(version) if version else checkout_version(project.directory)
    if version is None and source is None:
        source = "build"
    target = Release(app, proxy_version(project.directory))
    return Deployment(project, console, target, source).run()


ROLLBACK_CHOICES = (
    "choose one: --keep-schema runs the previous code on the current schema (safe when the "
    "newer migrations only added things: expand, docs/operations.md, Migrations); "
    "--reverse-migrations first reverses them with the current code, which can lose the "
    "data they hold"
)


def rollback(project: Project, console: Console, schema: str | None) -> str:
    history = History(project.state_dir)
    current = project.setting("APP_VERSION", "latest")
    previous = history.previous(current)
    if previous is None:
        raise OpsError(f"no earlier version than {current} in {history.path}; nothing to return to")
    console.say(f"returning to {previous.app} (proxy {previous.proxy}) from {current}")
    target = Release(previous.app, previous.proxy)
    deployment = Deployment(project, console, target, None)
    state = json.loads(
        deployment.run_release(
            "web", "python", "/app/scripts/unknown_migrations.py", release=target
        )
    )
    if state["unknown"]:
        names = ", ".join(state["unknown"])
        if schema is None:
            raise OpsError(f"the database holds migrations {previous.app} does not know: {names}; "
                           f"{ROLLBACK_CHOICES}")  # fmt: skip
        if schema == "reverse":
            for app, name in state["targets"].items():
                console.say(f"reversing {app} to {name} with {current}'s code")
                deployment.run_release(
                    "web", "python", "manage.py", "migrate", app, name,
                    release=Release(current, project.setting("NGINX_VERSION", "latest")),
                )  # fmt: skip
        else:
            console.say(f"keeping the schema: {previous.app} runs beside migrations {names}")
    return deployment.run()
