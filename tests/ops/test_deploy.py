"""./ops deploy and rollback under load: one stack's life, in order (tests/ops/conftest.py).

a is this checkout. b changes the CSS and adds a backward-compatible migration; rolling back
to a keeps b's schema. c cannot start, d's migration fails: both are undone by the verb.
e changes nginx's site configuration (a reload); f changes the proxy itself (a new nginx
container, the one window this stack cannot close). g switches the worker on (compose.worker.yaml
added to COMPOSE_FILE): Redis and a worker start beside the release; h is deployed while the
worker has thumbnails queued, which all get made. Throughout, visitors load pages and their
static files, a signed-in writer adds cats, and a slow upload crosses each switch, through a
load balancer with its default settings (tests/harness/balancer.py) and straight to nginx: every
request must succeed, a browser's resends stay few and counted, and every acknowledged cat must
be there afterwards, once.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter

import requests

from tests.harness.docker import docker
from tests.harness.measurements import record
from tests.harness.photos import ISSUE_PNG_SIDE, MAKERS
from tests.harness.polling import wait_until
from tests.ops.releases import (
    EXPAND_MIGRATION,
    EXPAND_NAME,
    FAILING_MIGRATION,
    FAILING_NAME,
    NICKNAME_FIELD,
)
from tests.ops.traffic import VISITORS, Site, SlowUpload, Traffic, written_once
from tests.stack.support import SITE_HOST, Client

SLOW_UPLOAD_S = 8
# web containers kept through the nginx-configuration deploy (`--scale` survives a deploy).
SCALE = 2
# A new nginx container: the old one's stop (its requests in flight), the new one's start.
NEW_PROXY_WINDOW_BOUND_S = 5
CANNOT_START = '\nraise SystemExit("error: this release cannot start")\n'
# A switch is one nginx reload, which closes each idle kept-alive connection once: at most one
# browser resend per visitor (tests/harness/browser_connection.py).
RESENDS_BOUND = VISITORS
# What earlier scenes leave for later ones (the module's tests run in order).
state: dict[str, str] = {}


def stylesheet(project) -> str:
    page = requests.get(
        project.site.url("/"), headers={"Host": SITE_HOST, "X-Forwarded-Proto": "https"},
        timeout=15,
    )  # fmt: skip
    return re.search(r'href="(/static/cats/style\.[0-9a-f]{12}\.css)"', page.text).group(1)


def static_status(project, path: str) -> int:
    return requests.get(project.site.url(path), headers={"Host": SITE_HOST}, timeout=15).status_code


def sites(project, front) -> tuple[Site, Site]:
    """Through the balancer first (the writer's way), then straight to nginx."""
    front.wait_up(1)
    return Site(front.port, "balancer"), project.site


def deploy_under_load(project, front, *args: str, expect_success: bool = True, on_line=None):
    """`./ops ARGS` while the traffic runs and a slow upload crosses the switch; returns
    (the verb's output, the traffic, the slow upload). `on_line` sees each line as it comes."""
    upload = SlowUpload(project.site, SLOW_UPLOAD_S, name=f"slow {' '.join(args)}")
    output = []
    with Traffic(*sites(project, front)) as traffic:
        time.sleep(1)
        started = time.monotonic()
        process = project.popen(*args)
        for line in process.stdout:
            output.append(line)
            # Sent once the new release is up, so it is in flight at the switch.
            if "] ready" in line and upload.ident is None:
                upload.start()
            if on_line is not None:
                on_line(line)
        process.wait(timeout=600)
        project.durations[" ".join(args)] = round(time.monotonic() - started, 1)
        if upload.ident is not None:
            upload.join(timeout=SLOW_UPLOAD_S + 30)
        time.sleep(1)
    text = "".join(output)
    assert (process.returncode == 0) == expect_success, text
    assert traffic.requests > 50
    assert traffic.failures == [], traffic.explain(project.logs(), *front.access_lines())
    assert traffic.resent <= RESENDS_BOUND, traffic.summary()
    acknowledged = traffic.acknowledged + ([upload.name] if upload.status == 302 else [])
    assert written_once(project.site, acknowledged) == {}
    return text, traffic, upload


def test_a_first_deploy_brings_the_stack_up(ops_project):
    result = ops_project.ops("deploy", "a", "--build")
    assert "nothing runs yet: a brings the stack up" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("deploy: done in ")
    assert ops_project.setting("APP_VERSION") == "a"
    images = ops_project.compose("images").stdout
    assert re.search(rf"{re.escape(ops_project.images[0])}\s+a\s", images), images
    ops_project.create_superuser()
    assert static_status(ops_project, stylesheet(ops_project)) == 200


def test_deploy_a_to_b_loses_no_request(ops_project, front):
    old_css = stylesheet(ops_project)
    ops_project.edit(
        "app/cats/static/cats/style.css", "button {", ".cats li { margin: 0; }\nbutton {"
    )
    ops_project.edit(
        "app/cats/models.py", "    photo = models.ImageField(",
        NICKNAME_FIELD + "    photo = models.ImageField(",
    )  # fmt: skip
    ops_project.write(f"app/cats/migrations/{EXPAND_NAME}.py", EXPAND_MIGRATION)
    web_before = set(ops_project.container_ids("web"))
    nginx_before = ops_project.container_ids("nginx")

    _, traffic, upload = deploy_under_load(ops_project, front, "deploy", "b", "--build")

    assert (upload.status, upload.location[:6]) == (302, "/cats/")
    assert ops_project.setting("APP_VERSION") == "b"
    assert set(ops_project.container_ids("web")).isdisjoint(web_before)
    assert ops_project.container_ids("nginx") == nginx_before
    new_css = stylesheet(ops_project)
    assert new_css != old_css
    # A page a rendered, still open in a browser, keeps its CSS; b's is served too.
    assert static_status(ops_project, old_css) == 200
    assert static_status(ops_project, new_css) == 200
    assert {old_css, new_css} <= traffic.static_seen
    record("deploy a to b", {**traffic.summary(),
                             "seconds": ops_project.durations["deploy b --build"]})  # fmt: skip
    # A request b's containers log, read again once they are gone (after the rollback).
    state["b web"] = " ".join(ops_project.container_ids("web"))
    state["served by b"] = f"served-by-b-{uuid.uuid4().hex}"
    served = requests.get(
        ops_project.site.url("/"), timeout=15,
        headers={"Host": SITE_HOST, "X-Forwarded-Proto": "https",
                 "X-Request-ID": state["served by b"]},
    )  # fmt: skip
    assert served.status_code == 200


def test_plain_compose_after_a_pull_runs_the_deployed_release_as_it_is(ops_project):
    """A `git pull` brings new code; plain `docker compose up -d --wait` (not the update,
    docs/operations.md, Updating) keeps the release .env pins: nothing rebuilt or recreated."""
    assert ops_project.setting("IMAGE_POLICY") == "never"
    web_before = ops_project.container_ids("web")
    image_before = docker("image", "inspect", "--format", "{{.Id}}", f"{ops_project.images[0]}:b")
    ops_project.edit(
        "app/cats/static/cats/style.css", "button {", ".pulled { margin: 0; }\nbutton {"
    )
    css = stylesheet(ops_project)
    try:
        up = ops_project.compose("up", "--detach", "--wait")
    finally:
        ops_project.edit(
            "app/cats/static/cats/style.css", ".pulled { margin: 0; }\nbutton {", "button {"
        )
    assert "Pulling" not in up.stdout + up.stderr
    assert ops_project.container_ids("web") == web_before
    assert (
        docker("image", "inspect", "--format", "{{.Id}}", f"{ops_project.images[0]}:b").stdout
        == image_before.stdout
    )
    assert stylesheet(ops_project) == css


def test_rollback_names_the_newer_migrations_and_waits_for_a_choice(ops_project):
    result = ops_project.ops("rollback", check=False)
    assert result.returncode == 1
    assert f"the database holds migrations a does not know: cats.{EXPAND_NAME}" in result.stderr
    assert "--keep-schema" in result.stderr
    assert "--reverse-migrations" in result.stderr
    assert ops_project.setting("APP_VERSION") == "b"


def test_rollback_b_to_a_keeping_the_schema_loses_no_request(ops_project, front):
    b_css = stylesheet(ops_project)
    _, traffic, upload = deploy_under_load(ops_project, front, "rollback", "--keep-schema")
    assert (upload.status, upload.location[:6]) == (302, "/cats/")
    assert ops_project.setting("APP_VERSION") == "a"
    assert stylesheet(ops_project) != b_css
    assert static_status(ops_project, b_css) == 200
    seconds = ops_project.durations["rollback --keep-schema"]
    record("rollback b to a", {**traffic.summary(), "seconds": seconds})


def test_a_retired_releases_logs_are_read_after_it_is_rolled_back(ops_project):
    """b's web containers are gone (the rollback removed them), and so is what Docker kept of
    their logs; ./ops logs still shows them, from .ops/logs, and --since leaves them out once
    they are older."""
    for container in state["b web"].split():
        assert docker("container", "inspect", container, check=False).returncode != 0
    logs = ops_project.ops("logs", "web")
    retired, _, running = logs.stdout.partition("logs: [2/2] running")
    assert "_web_b_" in retired
    assert "(release b, retired)" in retired
    assert state["served by b"] in retired
    assert state["served by b"] not in running
    assert logs.stdout.splitlines()[-1].startswith("logs: done in ")
    time.sleep(2)
    recent = ops_project.ops("logs", "web", "--since", "1s")
    assert state["served by b"] not in recent.stdout
    refused = ops_project.ops("logs", "web", "--since", "an hour", check=False)
    assert refused.returncode == 1
    assert "use a number and a unit, e.g. 30m, 2h or 1d" in refused.stderr


def test_a_release_that_cannot_start_is_undone(ops_project, front):
    ops_project.edit("config/gunicorn.py", "\nMODES = {", CANNOT_START + "\nMODES = {")
    web_before = set(ops_project.container_ids("web"))
    output, traffic, upload = deploy_under_load(
        ops_project, front, "deploy", "c", "--build", expect_success=False
    )
    ops_project.edit("config/gunicorn.py", CANNOT_START + "\nMODES = {", "\nMODES = {")
    assert "failed at ready: c's web container" in output
    assert "error: this release cannot start" in output
    assert (upload.status, upload.location[:6]) == (302, "/cats/")
    assert ops_project.setting("APP_VERSION") == "a"
    assert set(ops_project.container_ids("web")) == web_before
    record("failed deploy: c cannot start", {
        **traffic.summary(), "seconds": ops_project.durations["deploy c --build"],
    })  # fmt: skip


def test_a_release_whose_migration_fails_is_undone(ops_project, front):
    ops_project.write(f"app/cats/migrations/{FAILING_NAME}.py", FAILING_MIGRATION)
    web_before = set(ops_project.container_ids("web"))
    output, traffic, _ = deploy_under_load(
        ops_project, front, "deploy", "d", "--build", expect_success=False
    )
    (ops_project.directory / f"app/cats/migrations/{FAILING_NAME}.py").unlink()
    assert "failed at migrate: d's migrations failed; a still serves" in output
    assert "division by zero" in output
    assert set(ops_project.container_ids("web")) == web_before
    assert ops_project.setting("APP_VERSION") == "a"
    record("failed deploy: d's migration fails", {
        **traffic.summary(), "seconds": ops_project.durations["deploy d --build"],
    })  # fmt: skip


def test_an_nginx_configuration_change_is_a_reload_that_keeps_the_scale(ops_project, front):
    """Also: a second verb is refused while this deploy runs."""
    ops_project.compose("up", "--detach", "--no-recreate", "--scale", f"web={SCALE}", "web")
    ops_project.edit(
        "nginx/templates/site.conf.template", "    location / {\n        if (",
        "    location / {\n        add_header X-Release-Test e always;\n        if (",
    )  # fmt: skip
    nginx_before = ops_project.container_ids("nginx")
    refusals = []

    def second_verb(line: str) -> None:
        if "] publish" in line:
            refusals.append(ops_project.ops("deploy", "x", "--build", check=False))

    _, traffic, upload = deploy_under_load(
        ops_project, front, "deploy", "e", "--build", on_line=second_verb
    )
    assert (upload.status, upload.location[:6]) == (302, "/cats/")
    assert ops_project.container_ids("nginx") == nginx_before
    answer = requests.get(
        ops_project.site.url("/"), headers={"Host": SITE_HOST, "X-Forwarded-Proto": "https"},
        timeout=15,
    )  # fmt: skip
    assert answer.headers["X-Release-Test"] == "e"
    assert len(ops_project.container_ids("web")) == SCALE
    [refused] = refusals
    assert refused.returncode == 1
    assert "./ops deploy (pid" in refused.stderr
    assert "is running in this project" in refused.stderr
    record("deploy with an nginx configuration change", {
        **traffic.summary(), "seconds": ops_project.durations["deploy e --build"],
    })  # fmt: skip


def test_a_new_proxy_replaces_nginx_within_a_short_window(ops_project, front):
    ops_project.edit("nginx/nginx.conf", "events {", "# a new proxy release\nevents {")
    nginx_before = ops_project.container_ids("nginx")
    balanced, direct = sites(ops_project, front)
    with Traffic(balanced, direct) as traffic:
        time.sleep(1)
        ops_project.ops("deploy", "f", "--build")
        time.sleep(1)
    assert ops_project.container_ids("nginx") != nginx_before
    times = [float(failure.split("s ", 1)[0]) for failure in traffic.failures]
    window = max(times) - min(times) if times else 0.0
    assert window < NEW_PROXY_WINDOW_BOUND_S, traffic.failures
    assert traffic.resent <= RESENDS_BOUND, traffic.summary()
    assert written_once(ops_project.site, traffic.acknowledged) == {}
    record("deploy with a new proxy", {
        **traffic.summary(), "failed (balancer)": len(traffic.failed_through(balanced)),
        "failed (nginx)": len(traffic.failed_through(direct)), "window_s": round(window, 2),
        "failure_kinds": failure_kinds(traffic.failures),
        "seconds": ops_project.durations["deploy f --build"],
    })  # fmt: skip


def failure_kinds(failures: list[str]) -> dict[str, int]:
    """How many failures of each kind ('balancer: GET /: 503'), times and static names aside."""
    kinds = Counter(
        re.sub(r"/static/[^\s:]+", "/static/...", failure.split("s ", 1)[1]).split(" (")[0][:80]
        for failure in failures
    )
    return dict(sorted(kinds.items()))


WORKER_ON = "COMPOSE_FILE=compose.yaml:compose.worker.yaml\n"
# Photos whose thumbnails take the worker a second or more each (the issue's 40-megapixel PNG),
# uploaded as the new release gets ready: A's worker is busy with them when it is retired.
QUEUED_PHOTOS = 10
THUMBNAILS_BOUND_S = 120
# web started again after the status test stopped it: healthy within its start period.
STATUS_BOUND_S = 90
# From every web container healthy again to the site serving: nginx's fail_timeout
# (nginx/templates/site.conf.template) and a poll; at nginx's default it was up to 10 s.
SERVES_AFTER_HEALTHY_S = 3
POLL_S = 0.1
CLOSED_PORT_VISITS = 30


def running(project, service: str) -> list[str]:
    return project.compose("ps", "--quiet", "--status", "running", service).stdout.split()


def test_switching_the_worker_on_is_a_deploy_that_loses_no_request(ops_project, front):
    env = ops_project.directory / ".env"
    env.write_text(env.read_text() + WORKER_ON)
    _, traffic, upload = deploy_under_load(ops_project, front, "deploy", "g", "--build")
    assert (upload.status, upload.location[:6]) == (302, "/cats/")
    assert len(running(ops_project, "redis")) == 1
    assert len(running(ops_project, "worker")) == 1
    record("deploy switching the worker on", {
        **traffic.summary(), "seconds": ops_project.durations["deploy g --build"],
    })  # fmt: skip


def test_a_deploy_with_thumbnails_queued_makes_them_all(ops_project, front):
    photo = MAKERS["png"](ISSUE_PNG_SIDE)
    writer = Client(ops_project.site)
    writer.log_in()
    workers_before = set(running(ops_project, "worker"))
    names: list[str] = []

    def upload_when_ready(line: str) -> None:
        if "] ready" in line and not names:
            for i in range(QUEUED_PHOTOS):
                name = f"queued-{i}"
                response = writer.post_form(
                    "/cats/new/", {"name": name, "breed": "Tabby", "age": "2"},
                    files={"photo": ("big.png", photo, "image/png")},
                )  # fmt: skip
                assert response.status_code == 302, response.status_code
                names.append(name)

    output, _, _ = deploy_under_load(
        ops_project, front, "deploy", "h", "--build", on_line=upload_when_ready
    )
    assert len(names) == QUEUED_PHOTOS
    assert "worker(s) of g stopped and removed" in output
    workers_after = set(running(ops_project, "worker"))
    assert workers_after
    assert workers_after.isdisjoint(workers_before)
    deadline = time.monotonic() + THUMBNAILS_BOUND_S
    while True:
        cats = requests.get(
            ops_project.site.url("/api/cats/?page_size=100"),
            headers={"Host": SITE_HOST, "X-Forwarded-Proto": "https"}, timeout=15,
        ).json()["results"]  # fmt: skip
        missing = [c["name"] for c in cats if c["name"] in names and not c["thumbnail_url"]]
        if not missing:
            break
        assert time.monotonic() < deadline, f"thumbnails never made: {missing}"
        time.sleep(1)
    queued_ids = {c["id"] for c in cats if c["name"] in names}
    task_ms = sorted(
        line["duration_ms"] for line in worker_json_lines(ops_project)
        if line.get("message") == "thumbnail made" and line.get("cat_id") in queued_ids
    )  # fmt: skip
    record("deploy with thumbnails queued", {
        "photos": QUEUED_PHOTOS, "seconds": ops_project.durations["deploy h --build"],
        "task_ms_median": task_ms[len(task_ms) // 2] if task_ms else None,
        "megapixels": round(ISSUE_PNG_SIDE**2 / 1e6),
    })  # fmt: skip


def status(project) -> tuple[int, str, dict]:
    """`./ops status` and `./ops status --json`: (exit status, last line, the JSON)."""
    shown = project.ops("status", check=False)
    as_json = project.ops("status", "--json", check=False)
    assert as_json.returncode == shown.returncode, (shown.stdout, as_json.stdout)
    return shown.returncode, shown.stdout.strip().splitlines()[-1], json.loads(as_json.stdout)


def test_status_says_healthy_degraded_or_down_in_its_exit_status(ops_project):
    """A monitoring check's contract (docs/operations.md, Status): 0 healthy, 1 degraded (the
    site serves, the worker does not), 2 down (web has no healthy container)."""
    code, line, report = status(ops_project)
    assert (code, report["status"]) == (0, "healthy"), line
    assert line.startswith("status: done in ")
    assert ": healthy; release h" in line
    assert {s["version"] for s in report["services"]["web"]} == {"h"}
    ops_project.compose("stop", "worker")
    try:
        code, line, report = status(ops_project)
    finally:
        ops_project.compose("start", "worker")
    assert (code, report["status"]) == (1, "degraded"), line
    assert "worker: none healthy" in report["problems"]
    assert ops_project.site_answers("/")
    web = ops_project.compose("ps", "--all", "--quiet", "web").stdout.split()
    ops_project.compose("stop", "web", "db")
    try:
        code, line, report = status(ops_project)
    finally:
        # web's containers run but wait for the database, their port closed: visitors meanwhile
        # make nginx meet refused connections (it skips such a container for fail_timeout).
        # (`compose start web` would start db first.)
        docker("start", *web)
        for _ in range(CLOSED_PORT_VISITS):
            ops_project.site_answers("/")
            time.sleep(POLL_S)
        ops_project.compose("start", "db")
    assert (code, report["status"]) == (2, "down"), line
    assert "web: none healthy" in report["problems"]
    # Once every web container is healthy the site must serve at once, not after nginx's pause.
    wait_until(lambda: visited_until_healthy(ops_project), STATUS_BOUND_S,
               what="web healthy again", interval=POLL_S)  # fmt: skip
    healthy = time.monotonic()
    wait_until(lambda: ops_project.site_answers("/"), SERVES_AFTER_HEALTHY_S,
               what="the site serving once web is healthy", interval=POLL_S)  # fmt: skip
    record("web restarted", {"served_after_healthy_s": round(time.monotonic() - healthy, 1)})
    wait_until(lambda: status(ops_project)[0] == 0, STATUS_BOUND_S, what="healthy again")


def visited_until_healthy(project) -> bool:
    """One visit to the site (whatever it answers), then whether web is healthy."""
    project.site_answers("/")
    return web_healthy(project)


def web_healthy(project) -> bool:
    listed = project.compose("ps", "--format", "json", "web").stdout
    health = [json.loads(line)["Health"] for line in listed.splitlines() if line.strip()]
    return len(health) == SCALE and set(health) == {"healthy"}


def test_switching_the_worker_off_names_the_file_it_drops(ops_project, front):
    """COMPOSE_FILE loses compose.worker.yaml: ./ops refuses until told the drop is meant
    (--without), then retires the worker and Redis with the old release, no request lost."""
    env = ops_project.directory / ".env"
    env.write_text(env.read_text().replace(WORKER_ON, ""))
    refused = ops_project.ops("deploy", "i", "--build", check=False)
    assert refused.returncode == 1
    [reason] = refused.stderr.splitlines()
    assert reason.startswith(
        "deploy: failed at check: the running containers were created with "
        "compose.worker.yaml, which COMPOSE_FILE (compose.yaml) does not name"
    )
    assert reason.endswith("to stop using it, add --without compose.worker.yaml")
    assert ops_project.setting("APP_VERSION") == "h"
    output, _, _ = deploy_under_load(
        ops_project, front, "deploy", "i", "--build", "--without", "compose.worker.yaml"
    )
    assert running(ops_project, "worker") == running(ops_project, "redis") == []
    assert "container(s) of services no longer defined" in output
    assert f"network(s) no longer defined removed: {ops_project.name}_worker" in output
    # The queue's volume stays until the operator removes it, with the command the deploy names.
    kept = re.search(r"\(to remove: (docker volume rm \S+)\)", output)
    assert kept, output
    assert kept.group(1) == f"docker volume rm {ops_project.name}_redis-data"
    docker(*kept.group(1).split()[1:])
    assert status(ops_project)[0] == 0


def worker_json_lines(project) -> list[dict]:
    """The JSON lines every worker container of the project wrote (the running ones)."""
    lines = []
    for line in project.compose("logs", "--no-color", "worker").stdout.splitlines():
        _, _, text = line.partition("| ")
        if text.startswith("{"):
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:
                continue
    return lines
