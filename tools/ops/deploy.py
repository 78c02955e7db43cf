"""deploy and rollback: a new release beside the running one, switched to once it is ready.

The steps, each a method with one way to fail:
  check    versions, the compose files (those in use must include every one the running
           containers were made from), the running release (A) and its web containers (N)
  images   the release's images (B) on this VM: present, built from the checkout, or pulled
  publish  B's static files and nginx templates into the site volume, beside A's
  migrate  web's database role made where a stack predates it (db-roles: no superuser, the
           owner of the app's database), then B's migrations as that role, once, while A
           serves (they must be backward compatible)
  start    N web containers of B beside A's; nginx sends them nothing yet. With the worker
           (compose.worker.yaml), M workers of B beside A's too (at least one). Services no
           container of which exists yet (an override just added: the monitoring set; a
           service new in compose.yaml: the photos' copy) start too, healthy before this step
           ends
  ready    every B container healthy and ready (database, migrations); B's workers healthy
  switch   B becomes the active release: nginx reloads (or, for a new proxy or nginx settings
           changed in .env, is replaced)
  retire   A's containers stop once nginx's previous workers have finished their requests;
           A's workers finish their tasks or hand them back to the queue, which B's work off;
           services of a compose file dropped on purpose (--without) stop too; their logs are
           kept in .ops/logs (./ops logs) before they are removed
  record   .env names B (and IMAGE_POLICY=never: plain compose runs B as it is, compose.yaml),
           .ops/history gains it, old images, releases and logs are pruned
A failure before `retire` removes B's containers and leaves A active: A serves throughout;
.ops/rollbacks records the deploy undone, as it records every ./ops rollback (monitoring
alerts on both: DeployRolledBack).
On a VM where nothing runs yet, `images` is followed by one `up` of the whole stack.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from tools.ops import commands, logs
from tools.ops.console import Console, OpsError
from tools.ops.data import Data
from tools.ops.history import Entry, History, Rollbacks
from tools.ops.images import Images, check_version
from tools.ops.project import Container, Project
from tools.ops.readiness import READY_TIMEOUT_S, NotReady, wait_ready

STEPS = ("check", "images", "publish", "migrate", "start", "ready", "switch", "retire", "record")
FRESH_STEPS = ("check", "images", "up", "record")
DEFAULT_KEEP_VERSIONS = 5
# Image sources: where a missing image comes from.
BUILD, PULL = "build", "pull"
RELEASE_IMAGE_POLICY = "never"
# What a deploy replaces, or starts itself (the broker with the worker).
RELEASE_SERVICES = ("web", "worker", "redis", "nginx")


@dataclass(frozen=True)
class Release:
    app: str
    proxy: str

    @property
    def env(self) -> dict[str, str]:
        return {"APP_VERSION": self.app, "NGINX_VERSION": self.proxy}


class NothingToDeploy(OpsError):
    """The target release already serves."""


class Deployment:
    """One deploy of `target` in `project`. `source` says where missing images come from:
    BUILD (the checkout), PULL (the registry) or None (they must be on this VM); `without`
    names compose files the running stack was made with that this deploy drops on purpose."""

    def __init__(
        self,
        project: Project,
        console: Console,
        target: Release,
        source: str | None,
        without: tuple[str, ...] = (),
    ) -> None:
        self.project = project
        self.console = console
        self.target = target
        self.source = source
        self.without = without
        self.images = Images(project)
        self.history = History(project.state_dir)
        # Found by check: the running release (None on a fresh VM) and its containers.
        self.current: Release | None = None
        self.running: list[Container] = []
        self.workers_running: list[Container] = []
        # Whether the compose files in use define the worker (compose.worker.yaml).
        self.with_worker = False
        # Made by start; undone by undo() until retire.
        self.started: list[Container] = []
        self.workers_started: list[Container] = []
        self.services_started: list[str] = []
        self.switched = False
        self.nginx_replaced = False

    # --- the steps --------------------------------------------------------------------------

    def check(self) -> None:
        engine, compose = self.project.check_versions()
        self.console.note(f"Docker Engine {engine}, compose {compose}")
        for added in self.project.compose_files_check(self.without):
            self.console.note(f"{self.project.relative(added)} is new to this stack: its "
                              "services start with this deploy")  # fmt: skip
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
            self.project.run(commands.remove([c.id for c in strays], force=True))
        self.running = [c for c in web if c.version == app]
        self.with_worker = self.project.has_service("worker")
        if self.with_worker:
            workers = [c for c in self.project.containers("worker") if c.state == "running"]
            strays = [c for c in workers if c.version != app]
            if strays:
                # Stopped, not killed: a task they hold goes back to the queue.
                self.console.note(f"stopping {len(strays)} worker(s) of an unfinished deploy")
                self.project.run(commands.stop(c.id for c in strays))
                self.project.run(commands.remove([c.id for c in strays], force=True))
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
            raise NothingToDeploy(f"{app} already serves; nothing to deploy")

    def ensure_images(self) -> None:
        names = self.images.names(self.target.app, self.target.proxy)
        for service in ("web", "nginx"):
            image = names[service]
            if self.images.exists(image):
                self.console.note(f"{image}: on this VM")
                continue
            # The proxy is always buildable from the checkout; the release, when asked to.
            source = self.source if service == "web" else (self.source or BUILD)
            if source == PULL:
                self.console.note(f"{image}: pulling")
                self.images.pull(image)
            elif source == BUILD:
                self.console.note(f"{image}: building from {self.project.directory}")
                self.images.build(service, self.target.app, self.target.proxy)
            else:
                raise OpsError(
                    f"{image} is not on this VM; build it from this checkout "
                    f"(./ops deploy {self.target.app} --build) or pull it "
                    f"(./ops deploy {self.target.app} --pull)"
                )
        # The database's image (postgres/) is not a release's: built from the checkout at each
        # deploy (from the build cache when postgres/ is unchanged), so the one-off containers
        # of its image run this checkout's scripts; the running db keeps its container, and
        # takes the new image the next time compose recreates it.
        database = self.images.service_image("db")
        if database:
            started = time.monotonic()
            self.images.build("db", self.target.app, self.target.proxy)
            self.console.note(f"{database}: built from {self.project.directory} in "
                              f"{time.monotonic() - started:.1f} s")  # fmt: skip

    def up(self) -> None:
        self.project.run(
            commands.up(wait=True), env=self.target.env, what="docker compose up",
            timeout=READY_TIMEOUT_S + 300,
        )  # fmt: skip

    def publish(self) -> None:
        self.console.note(self.run_release("publish", *commands.PUBLISH, release=self.target))

    def migrate(self) -> None:
        # A stack from before web's role: its password (init-secrets keeps every secret it
        # finds), then the role. Once made, every `up` keeps it in line (db-roles).
        if self.project.has_service("db-roles") and not Data(self.project).app_role_exists():
            self.run_release("init-secrets", release=self.target)
            self.console.note(self.run_release("db-roles", release=self.target))
        try:
            self.run_release("web", *commands.MIGRATE, release=self.target)
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
        self.project.run(
            commands.up("web", no_deps=True, no_recreate=True, scale={"web": 2 * count}),
            env=self.target.env, what="starting the new web containers",
        )  # fmt: skip
        self.started = self.containers_of(self.target.app)
        self.console.note(f"{len(self.started)} web container(s) of {self.target.app} started")
        if self.with_worker:
            self.start_workers()
        self.start_new_services()

    def start_workers(self) -> None:
        """B's workers beside A's: both take tasks from the queue until A's retire. The broker
        is started first when the worker is new to this stack (its override just added)."""
        self.project.run(
            commands.up("redis", wait=True, no_deps=True, no_recreate=True),
            env=self.target.env, what="starting the broker", timeout=READY_TIMEOUT_S,
        )  # fmt: skip
        count = len(self.workers_running) + max(1, len(self.workers_running))
        self.project.run(
            commands.up("worker", no_deps=True, no_recreate=True, scale={"worker": count}),
            env=self.target.env, what="starting the new workers",
        )  # fmt: skip
        self.workers_started = self.containers_of(self.target.app, "worker")
        self.console.note(f"{len(self.workers_started)} worker(s) of {self.target.app} started")

    def start_new_services(self) -> None:
        """The services this release's compose files bring that nothing above starts and that
        have no container yet: an override just added to COMPOSE_FILE (the monitoring set's),
        or a service new in compose.yaml (the photos' copy, for a stack older than it). Running
        before nginx switches, gone again if B is undone. Never a release's service (the deploy
        replaces or starts those itself), nor a one-shot (restart "no"): publish's would make B
        active here, before it is ready, were its container pruned."""
        present = {c.service for c in self.project.all_containers()}
        new = [
            name
            for name, service in self.project.config()["services"].items()
            if name not in present
            and name not in RELEASE_SERVICES
            and service.get("restart", "no") != "no"
        ]
        if not new:
            return
        self.services_started = new
        self.project.run(
            commands.up(*new, wait=True, no_deps=True, no_recreate=True), env=self.target.env,
            what=f"starting {', '.join(new)}", timeout=READY_TIMEOUT_S,
        )  # fmt: skip
        self.console.note(f"new to this stack, started: {', '.join(new)}")

    def wait_ready(self) -> None:
        started = [*self.started, *self.workers_started]
        try:
            wait_ready(self.project, started, self.target_containers)
        except NotReady as late:
            kind = "web container" if late.container.service == "web" else late.container.service
            raise OpsError(
                f"{self.target.app}'s {kind} {late.container.name} {late.why}; "
                f"{self.current_app} still serves. Its last log lines:",
                self.project.logs(late.container),
            ) from None
        self.console.note(f"{len(started)} container(s) healthy and ready")

    def switch(self) -> None:
        self.run_release("publish", *commands.PUBLISH, "--activate", release=self.target)
        self.switched = True
        nginx = self.project.containers("nginx")
        wanted = self.images.image_id(
            self.images.names(self.target.app, self.target.proxy)["nginx"]
        )
        # The same proxy image and settings: a reload. A new proxy, or nginx's settings changed
        # in .env since it started: a new container, which reads them.
        same_settings = nginx and nginx[0].config_hash == self.project.config_hash(
            "nginx", self.target.env
        )
        if nginx and nginx[0].image_id == wanted and same_settings:
            reloaded = self.project.run(
                commands.in_service("nginx", "reload-site"), what="nginx reload-site", timeout=120
            )
            self.console.note(reloaded.stdout.strip())
            return
        started = time.monotonic()
        self.project.run(
            commands.up("nginx", wait=True, no_deps=True), env=self.target.env,
            what="replacing nginx", timeout=READY_TIMEOUT_S,
        )  # fmt: skip
        self.nginx_replaced = True
        why = "its settings changed" if nginx and nginx[0].image_id == wanted else "a new proxy"
        self.console.note(f"nginx replaced ({why}: proxy {self.target.proxy}) in "
                          f"{time.monotonic() - started:.1f} s")  # fmt: skip

    def retire(self) -> None:
        self.retire_containers(self.running, "web container(s)")
        # A worker's stop: running tasks get the soft shutdown's time to finish, the rest go
        # back to the queue (compose.worker.yaml); B's workers take them.
        self.retire_containers(self.workers_running, "worker(s)")
        # Services of a compose file dropped on purpose (--without): the worker switched off.
        defined = set(self.project.config()["services"])
        dropped = [c for c in self.project.all_containers() if c.service not in defined]
        self.retire_containers(dropped, "container(s) of services no longer defined")
        if dropped:
            self.forget_undefined()

    def forget_undefined(self) -> None:
        """What the dropped services used and the compose files no longer define: networks go
        (they hold nothing); volumes stay, with their data, named with the command that removes
        them: their data is the operator's to throw away."""
        config, name = self.project.config(), self.project.name()
        for kind in ("network", "volume"):
            defined = {item["name"] for item in config.get(f"{kind}s", {}).values()}
            listed = self.project.run(commands.project_objects(kind, name)).stdout.split()
            unused = [item for item in listed if item not in defined]
            if not unused:
                continue
            if kind == "network":
                self.project.run(commands.remove_networks(unused), what="removing networks")
                self.console.note(f"network(s) no longer defined removed: {', '.join(unused)}")
            else:
                self.console.note(f"volume(s) no longer defined kept, with their data: "
                                  f"{', '.join(unused)} (to remove: docker volume rm "
                                  f"{' '.join(unused)})")  # fmt: skip

    def retire_containers(self, containers: list[Container], kind: str) -> None:
        if not containers:
            return
        ids = [c.id for c in containers]
        # docker stop waits up to the container's stop_grace_period for requests in flight.
        self.project.run(commands.stop(ids), what=f"stopping the previous {kind}")
        saved = logs.keep(self.project, containers)
        self.project.run(commands.remove(ids), what=f"removing the previous {kind}")
        self.console.note(f"{len(ids)} {kind} of {self.current_app} stopped and removed; their "
                          f"logs kept: {', '.join(p.name for p in saved)}")  # fmt: skip

    def record(self) -> None:
        # Plain compose then runs this release as it is, never rebuilding its tag (compose.yaml).
        self.project.set_settings({**self.target.env, "IMAGE_POLICY": RELEASE_IMAGE_POLICY})
        self.history.append(self.target.app, self.target.proxy)
        keep = self.history.kept(self.keep_versions())
        removed = self.prune_images(keep)
        pruned = self.run_release(
            "publish", *commands.PRUNE_RELEASES, *[e.app for e in keep], release=self.target
        )
        old_logs = logs.prune(self.project, [e.app for e in keep])
        self.console.note(f".env: APP_VERSION={self.target.app} NGINX_VERSION={self.target.proxy} "
                          f"IMAGE_POLICY={RELEASE_IMAGE_POLICY}")  # fmt: skip
        self.console.note(f"kept versions {', '.join(e.app for e in keep)}; images removed: "
                          f"{', '.join(removed) or 'none'}; {pruned}; {old_logs} old log "
                          "file(s) removed")  # fmt: skip

    # --- undoing ----------------------------------------------------------------------------

    def undo(self) -> None:
        """Back to A as it was: A active again, nginx on A's proxy, B's containers gone."""
        if self.current is None:
            return
        if self.switched:
            self.run_release("publish", *commands.PUBLISH, "--activate", release=self.current)
            if self.nginx_replaced:
                self.project.run(
                    commands.up("nginx", wait=True, no_deps=True), env=self.current.env,
                    check=False, timeout=READY_TIMEOUT_S,
                )  # fmt: skip
            else:
                self.project.run(commands.in_service("nginx", "reload-site"), check=False)
        leftovers = self.containers_of(self.target.app)
        if leftovers:
            self.project.run(commands.remove([c.id for c in leftovers], force=True), check=False)
        workers = self.containers_of(self.target.app, "worker") if self.with_worker else []
        if workers:
            # Stopped first: a task one of them holds goes back to the queue for A's workers.
            self.project.run(commands.stop(c.id for c in workers), check=False)
            self.project.run(commands.remove([c.id for c in workers], force=True), check=False)
        added = [c.id for s in self.services_started for c in self.project.containers(s)]
        if added:
            self.project.run(commands.stop(added), check=False)
            self.project.run(commands.remove(added, force=True), check=False)

    # --- helpers ----------------------------------------------------------------------------

    @property
    def current_app(self) -> str:
        return self.current.app if self.current else "nothing"

    def run_release(self, service: str, *command: str, release: Release) -> str:
        """A one-off container of `service` in `release`'s image; its last line of output
        (the scripts' result; log lines come before it)."""
        result = self.project.run(
            commands.one_off(service, *command), env=release.env,
            what=f"{release.app}: {' '.join(command[1:2]) or service}",
        )  # fmt: skip
        return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""

    def containers_of(self, app: str, service: str = "web") -> list[Container]:
        return [c for c in self.project.containers(service) if c.version == app]

    def target_containers(self) -> list[Container]:
        services = ("web", "worker") if self.with_worker else ("web",)
        return [c for service in services for c in self.containers_of(self.target.app, service)]

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
            Rollbacks(self.project.state_dir).append(
                self.target.app, self.current_app, Rollbacks.DEPLOY_UNDONE
            )
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


def deploy(
    project: Project,
    console: Console,
    version: str | None,
    source: str | None,
    *,
    refresh_base: bool = False,
    without: tuple[str, ...] = (),
) -> str:
    images = Images(project)
    if refresh_base:
        console.say("pulling the newest base images")
    if version is None:
        app = images.checkout_version(refresh=refresh_base)
        source = source or BUILD
    else:
        app = check_version(version)
    # A VERSION names a release image made elsewhere; the proxy is still built here, on the
    # nginx base (already pulled above when the checkout's release is built).
    target = Release(app, images.proxy_version(refresh=refresh_base and version is not None))
    try:
        return Deployment(project, console, target, source, without).run()
    except NothingToDeploy:
        if not refresh_base:
            raise
        return f"{app} already serves: the base images have not changed since it was built"


ROLLBACK_CHOICES = (
    "choose one: --keep-schema runs the previous code on the current schema (safe when the "
    "newer migrations only added things: expand, docs/operations.md, Migrations); "
    "--reverse-migrations first reverses them with the current code, which can lose the "
    "data they hold"
)


def rollback(
    project: Project, console: Console, schema: str | None, without: tuple[str, ...] = ()
) -> str:
    history = History(project.state_dir)
    current = project.setting("APP_VERSION", "latest")
    previous = history.previous(current)
    if previous is None:
        raise OpsError(f"no earlier version than {current} in {history.path}; nothing to return to")
    console.say(f"returning to {previous.app} (proxy {previous.proxy}) from {current}")
    target = Release(previous.app, previous.proxy)
    deployment = Deployment(project, console, target, None, without)
    state = json.loads(deployment.run_release("web", *commands.UNKNOWN_MIGRATIONS, release=target))
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
    summary = deployment.run()
    Rollbacks(project.state_dir).append(current, previous.app, Rollbacks.ROLLBACK)
    return summary
