"""The opt-in worker (compose.worker.yaml): Redis and a Celery worker beside the stack, booted
the way ops switch it on. Uploads are answered at once and the worker makes the thumbnail,
which nginx serves; without the override web makes it in the request. The module's tests only
read or add cats of their own, so they share one stack; the one without the worker boots its
own."""

import json
import re
import time

import pytest

from tests.harness.measurements import record
from tests.stack.support import Stack, boot, png_bytes

STACK_FILES = ("compose.yaml", "compose.worker.yaml")
# A thumbnail takes well under a second; the bound leaves room for a busy 2-core machine.
THUMBNAIL_BOUND_S = 30
# Photos of 9 megapixels (a phone's): small files of flat colour, so the uploads are quick
# and the worker's time is the decode.
RATE_PHOTOS = 8
RATE_SIDE = 3000


def upload(client, name: str, photo: bytes, filename: str = "cat.png"):
    """Add a cat with `photo` through the form; (its id, the upload's request id, seconds)."""
    started = time.monotonic()
    response = client.post_form(
        "/cats/new/",
        {"name": name, "breed": "Tabby", "age": "3"},
        files={"photo": (filename, photo, "image/png")},
    )
    seconds = time.monotonic() - started
    assert response.status_code == 302, response.text[:2000]
    cat_id = int(re.fullmatch(r"/cats/(\d+)/", response.headers["Location"]).group(1))
    return cat_id, response.headers["X-Request-ID"], seconds


def thumbnail_url(stack: Stack, cat_id: int) -> str | None:
    url = stack.get(f"/api/cats/{cat_id}/").json()["thumbnail_url"]
    return url.removeprefix("https://localhost") if url else None


def wait_for_thumbnails(stack: Stack, cat_ids: list[int], bound_s: float) -> dict[int, str]:
    deadline = time.monotonic() + bound_s
    found: dict[int, str] = {}
    while len(found) < len(cat_ids):
        for cat_id in set(cat_ids) - set(found):
            if url := thumbnail_url(stack, cat_id):
                found[cat_id] = url
        assert time.monotonic() < deadline, f"thumbnails missing for {set(cat_ids) - set(found)}"
        time.sleep(0.2)
    return found


def worker_lines(stack: Stack, message: str) -> list[dict]:
    return [line for line in stack.json_logs("worker") if line["message"] == message]


def memory(stack: Stack, service: str, v2_name: str, v1_name: str) -> int:
    """A cgroup memory file of `service`'s container (v2, else v1), in bytes."""
    script = f"cat /sys/fs/cgroup/{v2_name} 2>/dev/null || cat /sys/fs/cgroup/memory/{v1_name}"
    return int(stack.exec(service, "sh", "-c", script).strip())


def test_everything_is_healthy_and_the_worker_stays_off_nginxs_network(shared_stack):
    states = {c["Service"]: (c["State"], c["Health"]) for c in shared_stack.project.ps()}
    for service in ("db", "web", "nginx", "redis", "worker"):
        assert states[service] == ("running", "healthy"), states
    worker = shared_stack.inspect("worker")
    networks = set(worker["NetworkSettings"]["Networks"])
    project = shared_stack.project.name
    assert networks == {f"{project}_backend", f"{project}_worker"}
    redis = shared_stack.inspect("redis")
    assert set(redis["NetworkSettings"]["Networks"]) == {f"{project}_worker"}
    assert redis["HostConfig"]["PortBindings"] in ({}, None)
    network = json.loads(shared_stack.project.compose("config", "--format", "json").stdout)[
        "networks"
    ]["worker"]
    assert network["internal"] is True


def test_redis_and_the_worker_are_locked_down_like_web(shared_stack):
    web = shared_stack.inspect("web")["HostConfig"]
    for service in ("redis", "worker"):
        host = shared_stack.inspect(service)["HostConfig"]
        for key in ("ReadonlyRootfs", "CapDrop", "SecurityOpt", "LogConfig"):
            assert host[key] == web[key], (service, key)
        assert not host["CapAdd"]
        assert host["CpuShares"] > 0
        assert 0 < host["Memory"] < web["Memory"] + 1
        assert host["PidsLimit"] > 0
    status = shared_stack.exec("redis", "cat", "/proc/1/status")
    assert re.search(r"^Uid:\s+999\s", status, re.MULTILINE)
    status = shared_stack.exec("worker", "cat", "/proc/1/status")
    assert re.search(r"^Uid:\s+10001\s", status, re.MULTILINE)


def test_redis_reads_its_own_secret_and_no_other(shared_stack):
    """The secrets volume holds every secret of the stack (the database's, Django's, the
    backup key), whole only in db; Redis is given the one file of its own, web and the worker
    theirs."""
    stored = set(shared_stack.exec("db", "ls", "/run/secrets/catcollector").split())
    assert {"redis_password", "postgres_password", "backup_key"} <= stored
    seen = shared_stack.exec("redis", "ls", "-A", "/run/secrets/catcollector").split()
    assert seen == ["redis_password"]
    for service in ("web", "worker"):
        seen = shared_stack.exec(service, "ls", "-A", "/run/secrets/catcollector").split()
        assert seen == ["django_secret_key", "postgres_app_password", "redis_password"], service
    mounts = {m["Destination"]: m for m in shared_stack.inspect("redis")["Mounts"]}
    assert not any(d.startswith("/run/secrets") and d != "/run/secrets/catcollector/redis_password"
                   for d in mounts)  # fmt: skip
    assert mounts["/run/secrets/catcollector/redis_password"]["RW"] is False


def test_the_brokers_password_is_in_no_configuration_and_required(shared_stack):
    password = shared_stack.exec("web", "cat", "/run/secrets/catcollector/redis_password")
    assert re.fullmatch(r"[A-Za-z0-9_-]{64}", password)
    for service in ("redis", "worker", "web"):
        configuration = json.dumps(shared_stack.inspect(service)["Config"])
        assert password not in configuration, service
    assert password not in shared_stack.exec("redis", "cat", "/proc/1/cmdline")
    refused = shared_stack.project.exec("redis", "redis-cli", "ping", check=False).stdout
    assert refused.startswith("NOAUTH")
    persisted = shared_stack.exec(
        "redis", "sh", "-c",
        'REDISCLI_AUTH="$(cat /run/secrets/catcollector/redis_password)" '
        "redis-cli config get appendonly appendfsync maxmemory-policy",
    ).split()  # fmt: skip
    assert dict(zip(persisted[::2], persisted[1::2], strict=True)) == {
        "appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction",
    }  # fmt: skip


def test_an_upload_is_answered_at_once_and_the_worker_makes_its_thumbnail(shared_stack):
    client = shared_stack.signed_in_client()
    photo = png_bytes((1200, 900), color=(30, 90, 200))
    cat_id, request_id, seconds = upload(client, "Queued", photo)
    answered = time.monotonic()
    [url] = wait_for_thumbnails(shared_stack, [cat_id], THUMBNAIL_BOUND_S).values()
    latency = time.monotonic() - answered
    assert re.fullmatch(r"/media/thumbs/[0-9a-f]{32}\.jpg", url)

    # The worker made it, under the id of the request that stored the photo.
    [made] = shared_stack.json_lines(
        "worker",
        lambda line: line["message"] == "thumbnail made" and line.get("cat_id") == cat_id,
    )
    assert made["request_id"] == request_id
    assert made["logger"] == "app.cats.thumbnails"
    web_made = [
        line for line in shared_stack.json_logs("web")
        if line["message"] == "thumbnail made" and line.get("cat_id") == cat_id
    ]  # fmt: skip
    assert web_made == []

    # nginx serves it from the media volume, as it serves the photos.
    served = client.get(url)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "image/jpeg"
    assert served.content.startswith(b"\xff\xd8")
    [line] = shared_stack.nginx_lines(lambda r: r["request_id"] == served.headers["X-Request-ID"])
    assert line["upstream_status"] == ""
    page = client.get("/").text
    assert f'<img src="{url}"' in page
    record(
        "worker: upload answered, thumbnail made",
        {"upload_s": round(seconds, 2), "thumbnail_after_answer_s": round(latency, 2),
         "worker_ms": made["duration_ms"]},
    )  # fmt: skip


def test_a_deleted_cat_takes_its_photo_and_thumbnail(shared_stack):
    """Deleted in the admin once the worker made its thumbnail: nginx serves neither file
    afterwards. And docs/operations.md's remove_orphan_files runs as written there (every file
    here is younger than the hour it leaves alone, so it lists none)."""
    client = shared_stack.signed_in_client()
    cat_id, _, _ = upload(client, "Deleted", png_bytes((640, 480), color=(200, 90, 30)))
    [thumbnail] = wait_for_thumbnails(shared_stack, [cat_id], THUMBNAIL_BOUND_S).values()
    photo = shared_stack.get(f"/api/cats/{cat_id}/").json()["photo_url"]
    photo = photo.removeprefix("https://localhost")
    assert client.get(photo).status_code == client.get(thumbnail).status_code == 200
    deleted = client.post_form(f"/admin/cats/cat/{cat_id}/delete/", {"post": "yes"})
    assert deleted.status_code == 302, deleted.text[:2000]
    assert client.get(photo).status_code == client.get(thumbnail).status_code == 404
    listed = shared_stack.exec("web", "python", "manage.py", "remove_orphan_files")
    assert listed.splitlines() == [
        "0 orphan file(s), 0.0 MiB, found (run again with --delete to remove them)"
    ]


def test_thumbnails_per_second_and_the_workers_memory(shared_stack):
    """A process's rate is the inverse of a task's time (the worker logs each); the queue's
    latency is in the test above. Memory: the worker container's, idle and at its peak."""
    client = shared_stack.signed_in_client()
    photo = png_bytes((RATE_SIDE, RATE_SIDE), color=(120, 60, 200))
    cat_ids = [upload(client, f"rate {i}", photo)[0] for i in range(RATE_PHOTOS)]
    wait_for_thumbnails(shared_stack, cat_ids, THUMBNAIL_BOUND_S + RATE_PHOTOS)
    made = [
        line["duration_ms"]
        for line in worker_lines(shared_stack, "thumbnail made")
        if line.get("cat_id") in cat_ids
    ]
    assert len(made) == RATE_PHOTOS
    median_ms = sorted(made)[RATE_PHOTOS // 2]
    record(
        "worker: thumbnails per second",
        {"photos": RATE_PHOTOS, "megapixels": RATE_SIDE**2 / 1e6, "task_ms_median": median_ms,
         "per_second_per_process": round(1000 / median_ms, 1),
         "memory_peak_mib": round(
             memory(shared_stack, "worker", "memory.peak", "memory.max_usage_in_bytes") / 2**20
         ),
         "memory_now_mib": round(
             memory(shared_stack, "worker", "memory.current", "memory.usage_in_bytes") / 2**20
         )},
    )  # fmt: skip
    # The two small containers' memory after that work, for the sizing table.
    record("nginx and redis memory", {
        service: round(
            memory(shared_stack, service, "memory.current", "memory.usage_in_bytes") / 2**20, 1
        )
        for service in ("nginx", "redis")
    })  # fmt: skip


def test_the_heartbeat_check_is_cheaper_than_a_ping_through_the_broker(shared_stack):
    """Measured for docs/operations.md: the health check compose.worker.yaml runs (the
    heartbeat file's age) against `celery inspect ping`, which starts Python and Django."""
    started = time.monotonic()
    shared_stack.exec("worker", "sh", "-c", "find /tmp/worker-heartbeat -mmin -0.5 | grep -q .")
    heartbeat_s = time.monotonic() - started
    started = time.monotonic()
    ping = shared_stack.exec(
        "worker", "sh", "-c",
        'celery --app config.celery inspect ping --timeout 5 -d "celery@$(hostname)"',
    )  # fmt: skip
    ping_s = time.monotonic() - started
    assert "pong" in ping
    record(
        "worker health check", {"heartbeat_s": round(heartbeat_s, 2), "ping_s": round(ping_s, 2)}
    )
    assert heartbeat_s < ping_s


def test_the_worker_and_redis_stop_promptly(shared_stack):
    """Last of the shared stack's tests: an idle worker and Redis stop on their stop signal,
    so a down, restart or reboot never waits out their grace periods."""
    assert shared_stack.project.stop_reporting_slow() == {}


@pytest.fixture
def stack_without_worker(compose_project, free_port) -> Stack:
    return boot(compose_project, free_port())


def test_without_the_override_web_makes_the_thumbnail_in_the_request(stack_without_worker):
    stack = stack_without_worker
    assert {c["Service"] for c in stack.project.ps()} == {
        "init-secrets", "publish", "db", "db-roles", "web", "nginx", "photos-backup",
    }  # fmt: skip
    stack.create_superuser()
    client = stack.signed_in_client()
    cat_id, request_id, _ = upload(client, "Inline", png_bytes((800, 600)))
    # Made before the answer: the list has it at once.
    url = thumbnail_url(stack, cat_id)
    assert url is not None
    [made] = stack.json_lines(
        "web", lambda line: line["message"] == "thumbnail made" and line.get("cat_id") == cat_id
    )
    assert made["request_id"] == request_id
    assert client.get(url).headers["Content-Type"] == "image/jpeg"
