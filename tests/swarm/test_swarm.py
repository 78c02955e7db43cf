"""stack.yaml on a one-node swarm: one stack's life, in order (tests/swarm/conftest.py).

Deployed as docs/swarm.md deploys it, it serves pages, static files, photos and the admin
through nginx; web's tasks migrate once between them; every task is locked down and limited.
Then web is scaled to three tasks and nginx spreads requests over them; v2 replaces v1 one
task at a time under load (visitors loading pages and their static files, a signed-in writer
adding cats) with no failed request; a release that never passes its health check is rolled
back by swarm itself, again with no failed request. Last, no secret value shows in any
service's or container's configuration.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import uuid
from collections import Counter

from tests.harness import REPO
from tests.harness.base_images import postgres_image
from tests.harness.docker import docker
from tests.harness.measurements import record
from tests.harness.polling import wait_until
from tests.ops.traffic import VISITORS, Site, Traffic, written_once
from tests.stack.support import APP_ROLE_FACTS, ROLE_FACTS, SITE_HOST, png_bytes, python_in_web
from tests.swarm.support import IGNORED_WARNINGS

# One address (this host) plays many visitors behind the load balancer: the per-client limits
# are lifted, as in tests/ops. A short start period lets the never-healthy release fail within
# the layer's time (WEB_START_PERIOD plus three 10 s intervals).
STACK_ENV = {
    "NGINX_RATE_LIMIT": "100000",
    "NGINX_RATE_BURST": "100000",
    "NGINX_CONN_LIMIT": "1000",
    "WEB_START_PERIOD": "10s",
}
SCALED = 3
SPREAD_REQUESTS = 30
SPREAD_BOUND_S = 30
ROLLBACK_BOUND_S = 150
# nginx's error log, when it tried a web task that had stopped (it retries another when
# nothing was sent yet: how close the stop came to nginx's choice, not a failure).
UPSTREAM_ERROR = re.compile(r"connect\(\) failed|upstream prematurely closed|no live upstreams")
# nginx never reloads in a swarm update: a visitor's connection to it is never closed early, so
# resends can only come from a balancer's reused connection (at most one per visitor).
RESENDS_BOUND = VISITORS
HARDENING = {
    "db": {"caps": {"CHOWN", "DAC_READ_SEARCH", "SETGID", "SETUID"},
           "tmpfs": {"/var/run/postgresql", "/tmp", "/dev/shm"}},
    "web": {"caps": set(), "tmpfs": {"/tmp", "/run/metrics"}},
    "nginx": {"caps": set(), "tmpfs": {"/run/nginx", "/var/cache/nginx"}},
}  # fmt: skip


def test_deploy_brings_every_service_up(swarm_stack):
    output = swarm_stack.deploy_output
    assert not any(warning in output for warning in IGNORED_WARNINGS), output
    assert len(swarm_stack.healthy("db")) == 1
    wait_until(lambda: len(swarm_stack.healthy("nginx")) == 1, 30, what="nginx healthy")
    [published] = swarm_stack.containers("publish", all_states=True)
    state = swarm_stack.container_inspect(published)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    # The tag's one home is compose.yaml: the stack runs exactly that image.
    assert swarm_stack.image("db") == postgres_image(REPO)
    record("swarm deploy", {"seconds until serving": swarm_stack.deploy_seconds})


def test_the_site_serves_pages_static_files_photos_and_the_admin(swarm_stack):
    client = swarm_stack.client()
    login = client.get("/admin/login/")
    assert login.status_code == 200
    for stylesheet in re.findall(r'<link rel="stylesheet" href="([^"]+)"', login.text):
        css = client.get(stylesheet)
        assert (css.status_code, css.headers["Content-Type"]) == (200, "text/css"), stylesheet
        assert css.headers["Cache-Control"] == "max-age=315360000, public, immutable"
    client.log_in()
    assert "Site administration" in client.get("/admin/").text

    photo = png_bytes(color=(30, 90, 200))
    page = client.get(client.create_cat("Swarming", photo))
    assert page.status_code == 200
    photo_url = re.search(r'<img src="(/media/cats/[0-9a-f-]+\.png)"', page.text).group(1)
    served = swarm_stack.get(photo_url)
    assert (served.status_code, served.headers["Content-Type"]) == (200, "image/png")
    assert served.content == photo
    home = swarm_stack.get("/")
    assert home.status_code == 200
    assert "Swarming" in home.text
    assert swarm_stack.get(swarm_stack.stylesheet()).status_code == 200


def test_web_tasks_migrate_once_between_them(swarm_stack):
    """Both first tasks run the migrations under the advisory lock; one applies them."""
    lines = swarm_stack.task_lines("web")
    applied = {task for task, line in lines if "Applying cats.0001_initial" in line}
    ran = {task for task, line in lines if '"applying migrations"' in line}
    assert len(applied) == 1, lines
    assert len(ran) >= 2, lines


def test_web_tasks_sign_in_as_a_role_without_superuser_that_owns_the_database(swarm_stack):
    """The db-roles job made web's role with compose's script (postgres/app-role.sh, given to
    the official image as a config); web's tasks sign in as it."""
    done = [line for _, line in swarm_stack.task_lines("db-roles") if line.startswith("app-role:")]
    assert done == ["app-role: catcollector_app owns catcollector, without superuser"]
    assert python_in_web(swarm_stack, ROLE_FACTS) == APP_ROLE_FACTS


def test_tasks_are_locked_down_and_limited(swarm_stack):
    for service, expected in HARDENING.items():
        container = swarm_stack.containers(service)[0]
        host = swarm_stack.container_inspect(container)["HostConfig"]
        assert host["ReadonlyRootfs"], service
        assert host["CapDrop"] == ["ALL"], service
        assert {c.removeprefix("CAP_") for c in host["CapAdd"] or []} == expected["caps"]
        assert host["Memory"] > 0, service
        assert host["NanoCpus"] > 0, service
        assert host["PidsLimit"] > 0, service
        assert host["LogConfig"]["Type"] == "json-file", service
        # The stack's tmpfs mounts (a service-level `tmpfs:` would have been dropped silently).
        tmpfs = {m["Target"] for m in host["Mounts"] if m["Type"] == "tmpfs"}
        assert tmpfs == expected["tmpfs"], service
    nginx = swarm_stack.container_inspect(swarm_stack.containers("nginx")[0])
    assert nginx["Config"]["User"] == "101:101"
    bindings = nginx["HostConfig"]["PortBindings"]
    assert [b["HostPort"] for b in bindings["8080/tcp"]] == [str(swarm_stack.port)]
    assert swarm_stack.exec("web", "id", "-u").strip() == "10001"
    # The secrets arrive as files, where the *_FILE variables point.
    key = swarm_stack.exec("web", "cat", "/run/secrets/django_secret_key")
    assert key == swarm_stack.secrets[swarm_stack.env["DJANGO_SECRET_KEY_SWARM_SECRET"]]


def test_web_tasks_have_no_route_out(swarm_stack, containers, free_port):
    """As under compose (tests/stack/test_site.py): a listener on the VM, reached from a
    container with a route out, is unreachable from a web task."""
    bridge = json.loads(docker("network", "inspect", "bridge").stdout)[0]
    address = (bridge["IPAM"]["Config"][0]["Gateway"], free_port())
    connect = f"import socket; socket.create_connection({address!r}, timeout=5)"
    web = swarm_stack.containers("web")[0]
    with socket.create_server(address) as listener:
        reached = containers.run_once(
            swarm_stack.container_inspect(web)["Config"]["Image"], "python", "-c", connect
        )
        assert reached.returncode == 0, reached.stderr
        listener.accept()[0].close()
        from_web = docker("exec", web, "python", "-c", connect, check=False)
    assert from_web.returncode != 0
    assert "Network is unreachable" in from_web.stderr, from_web.stderr


def test_scaled_web_tasks_share_the_requests(swarm_stack):
    started = time.monotonic()
    scaled = swarm_stack.cli(
        "service", "scale", "--detach=false", f"{swarm_stack.service('web')}={SCALED}"
    )
    assert scaled.returncode == 0, scaled.stderr
    swarm_stack.wait_serving(SCALED, 60)
    scale_seconds = round(time.monotonic() - started, 1)

    def spread() -> dict[str, int] | None:
        # nginx re-resolves web every few seconds: a new task gets requests from then on.
        ids = {f"spread-{uuid.uuid4().hex}" for _ in range(SPREAD_REQUESTS)}
        statuses = {swarm_stack.get("/", headers={"X-Request-ID": i}).status_code for i in ids}
        assert statuses == {200}
        served = wait_until(
            lambda: logged_all(swarm_stack.served_by(ids), len(ids)), 15,
            what="every request in web's logs",
        )  # fmt: skip
        return dict(served) if len(served) == SCALED else None

    served = wait_until(spread, SPREAD_BOUND_S, what=f"requests served by all {SCALED} tasks")
    assert sum(served.values()) == SPREAD_REQUESTS
    record("swarm scale web to 3", {"seconds": scale_seconds,
                                    "requests per task": sorted(served.values())})  # fmt: skip


def test_a_rolling_update_under_load_loses_no_request(swarm_stack, images, front):
    """Publish first (both releases' static files then served), then web one task at a time,
    each new one healthy (in DNS) before an old one leaves."""
    old_css = swarm_stack.stylesheet()
    nginx_before = swarm_stack.containers("nginx")
    site = Site(swarm_stack.port)
    errors_before = upstream_errors(swarm_stack)
    with Traffic(Site(front.port, "balancer"), site) as traffic:
        time.sleep(1)
        started = time.monotonic()
        published = swarm_stack.update("publish", "--image", images.release("v2"))
        assert published.returncode == 0, published.stdout + published.stderr
        # The job ran to its end before web's update starts: what "publish first" means.
        assert published_release(swarm_stack) == images.release("v2")
        publish_seconds = round(time.monotonic() - started, 1)
        updated = swarm_stack.update("web", "--image", images.release("v2"))
        assert updated.returncode == 0, updated.stdout + updated.stderr
        update_seconds = round(time.monotonic() - started, 1)
        time.sleep(1)
    assert traffic.requests > 50
    assert traffic.failures == [], traffic.explain(*logged(swarm_stack, front))
    assert traffic.resent <= RESENDS_BOUND, traffic.summary()
    assert written_once(site, traffic.acknowledged) == {}

    assert running_images(swarm_stack) == [images.release("v2")] * SCALED
    new_css = swarm_stack.stylesheet()
    assert new_css != old_css
    # Pages of either release, still open in a browser, keep their CSS.
    assert {old_css, new_css} <= traffic.static_seen
    assert swarm_stack.get(old_css).status_code == 200
    assert swarm_stack.get(new_css).status_code == 200
    assert swarm_stack.containers("nginx") == nginx_before
    record("swarm rolling update v1 to v2", {
        "web tasks": SCALED, **traffic.summary(),
        "seconds (publish, then web)": update_seconds, "publish seconds": publish_seconds,
        "nginx upstream errors": upstream_errors(swarm_stack) - errors_before,
    })  # fmt: skip


def test_a_release_that_never_becomes_healthy_is_rolled_back_by_swarm(swarm_stack, images, front):
    site = Site(swarm_stack.port)
    with Traffic(Site(front.port, "balancer"), site) as traffic:
        time.sleep(1)
        started = time.monotonic()
        # The CLI waits for the outcome; its exit status is not the contract, the service is.
        swarm_stack.update("web", "--image", images.release("broken"))
        state = wait_until(
            lambda: rollback_outcome(swarm_stack), ROLLBACK_BOUND_S, what="the update rolled back"
        )
        seconds = round(time.monotonic() - started, 1)
        time.sleep(1)
    assert state == "rollback_completed", swarm_stack.inspect("web").get("UpdateStatus")
    assert swarm_stack.image("web") == images.release("v2")
    # A broken task swarm restarted meanwhile may take a moment to go.
    wait_until(
        lambda: running_images(swarm_stack) == [images.release("v2")] * SCALED, 60,
        what=f"{SCALED} tasks of v2 and nothing else",
    )  # fmt: skip
    # The broken task ran, never passed its probe, and never got a request.
    broken = [
        swarm_stack.container_inspect(c)
        for c in swarm_stack.containers("web", all_states=True)
        if swarm_stack.container_inspect(c)["Config"]["Image"] == images.release("broken")
    ]
    assert broken, "no task of the broken release ran"
    assert all(c["State"]["Health"]["Status"] == "unhealthy" for c in broken)
    assert traffic.requests > 50
    assert traffic.failures == [], traffic.explain(*logged(swarm_stack, front))
    assert traffic.resent <= RESENDS_BOUND, traffic.summary()
    assert written_once(site, traffic.acknowledged) == {}
    record("swarm update to a never-healthy release", {
        **traffic.summary(),
        "seconds until rolled back": seconds,
        "WEB_START_PERIOD": swarm_stack.env["WEB_START_PERIOD"],
    })  # fmt: skip


def test_no_secret_value_in_any_configuration(swarm_stack):
    """Neither `docker service inspect` nor `docker inspect` of any task container, current or
    replaced, shows a secret's value; both secrets were in use (the site served)."""
    assert swarm_stack.get("/readyz", headers={"Host": SITE_HOST}).status_code == 200
    inspected = []
    for service in ("db", "publish", "web", "nginx"):
        inspected.append(swarm_stack.cli("service", "inspect", swarm_stack.service(service)).stdout)
        for container in swarm_stack.containers(service, all_states=True):
            inspected.append(swarm_stack.cli("inspect", container).stdout)
    assert len(inspected) > 8
    for value in swarm_stack.secrets.values():
        assert not any(value in text for text in inspected)


def running_images(stack) -> list[str]:
    return sorted(stack.container_inspect(c)["Config"]["Image"] for c in stack.containers("web"))


def published_release(stack) -> str | None:
    """The image of the publish job's latest run, once it has ended well."""
    runs = [stack.container_inspect(c) for c in stack.containers("publish", all_states=True)]
    latest = max(runs, key=lambda run: run["Created"])
    done = (latest["State"]["Status"], latest["State"]["ExitCode"]) == ("exited", 0)
    return latest["Config"]["Image"] if done else None


def logged_all(served, count: int):
    """`served` once the logs hold all `count` requests (they can lag behind the answers)."""
    return served if sum(served.values()) == count else None


def rollback_outcome(stack) -> str | None:
    """How web's update ended once swarm has rolled it back (or given up rolling back)."""
    state = (stack.inspect("web").get("UpdateStatus") or {}).get("State", "")
    return state if state in ("rollback_completed", "rollback_paused") else None


def logged(stack, front) -> list[str]:
    """What nginx's and web's task containers (stopped ones too) and the balancer wrote, for a
    failure's explanation. Per container (`docker logs`): `docker service logs` of web timed
    out in CI. A source that cannot be read says so rather than hide the failures."""
    texts = []
    for service in ("nginx", "web"):
        for container in stack.containers(service, all_states=True):
            try:
                read = docker("logs", "--timestamps", container, check=False, timeout=30)
                lines = (read.stdout + read.stderr).splitlines()
            except subprocess.TimeoutExpired:
                lines = ["(its logs did not come within 30 s)"]
            texts.append("\n".join(f"{service} {container[:12]} {line}" for line in lines))
    texts.append("\n".join(front.access_lines()))
    return texts


def upstream_errors(stack) -> Counter[str]:
    """nginx's upstream errors so far, by kind."""
    return Counter(
        match.group(0)
        for _, line in stack.task_lines("nginx")
        if (match := UPSTREAM_ERROR.search(line))
    )
