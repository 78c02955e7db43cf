"""Photo uploads under abuse, through nginx on a real stack: many photos at the per-format
limits checked at once (web's memory), and a media volume that is full. Each test breaks its
own stack."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

from tests.harness.measurements import record
from tests.harness.photos import ISSUE_PNG_SIDE, MAKERS, largest_square
from tests.stack.support import (
    Client,
    Stack,
    boot,
    noise_png,
    png_bytes,
    python_in_web,
)

# Every request thread web has on the 2-core test machine (4 workers x 4 threads, the
# defaults): all of them busy with a photo at once. More would only queue in gunicorn.
CLIENTS = 16
# Every upload, retries included, is answered within this (gunicorn kills a request at 30 s).
UPLOADS_BOUND_S = 60


def burst_photos() -> list[tuple[str, bytes]]:
    """CLIENTS photos at the per-format limits, the costliest variant of each format (on the
    code before these limits, every one was decoded whole), in rounds of eight: the issue's
    6320x6320 PNG three times, the progressive full-colour JPEG and the WebP at their limits
    twice each (the most memory a check may take, 176 MiB), a GIF at 40 megapixels."""
    png = MAKERS["png"](ISSUE_PNG_SIDE)
    jpeg, webp, gif = (largest_square(extension)[1] for extension in ("jpg", "webp", "gif"))
    round_ = [
        ("issue.png", png), ("cap.jpg", jpeg), ("cap.webp", webp), ("issue.png", png),
        ("cap.jpg", jpeg), ("cap.webp", webp), ("issue.png", png), ("cap.gif", gif),
    ]  # fmt: skip
    return [round_[i % len(round_)] for i in range(CLIENTS)]


class Visitor(Client):
    """A signed-in user behind the load balancer, with an address of its own (so nginx's
    per-client limits count each visitor apart, as they would in production)."""

    def __init__(self, stack: Stack, address: str) -> None:
        super().__init__(stack)
        self.address = address

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs["headers"] = {"X-Forwarded-For": self.address, **kwargs.get("headers", {})}
        return super().request(method, path, **kwargs)


def upload(visitor: Visitor, name: str, photo: bytes, deadline: float) -> tuple[list[int], str]:
    """Post the form until it is accepted, honouring Retry-After on a 503: (every status, the
    last answer's text)."""
    statuses: list[int] = []
    while True:
        response = visitor.post_form(
            "/cats/new/",
            {"name": name, "breed": "Tabby", "age": "3"},
            files={"photo": (name, photo, "application/octet-stream")},
        )
        statuses.append(response.status_code)
        if response.status_code != 503 or time.monotonic() > deadline:
            return statuses, response.text
        retry_after = response.headers.get("Retry-After", "")
        assert retry_after.isdigit(), f"503 without a usable Retry-After: {retry_after!r}"
        time.sleep(int(retry_after))


def memory_reading(stack: Stack, v2_name: str, v1_name: str) -> int:
    """A cgroup memory file of web's container (v2, else v1), in bytes."""
    script = f"cat /sys/fs/cgroup/{v2_name} 2>/dev/null || cat /sys/fs/cgroup/memory/{v1_name}"
    return int(stack.exec("web", "sh", "-c", script).strip())


def cats_listed(stack) -> int:
    """The cats the JSON API lists (fewer than one page here)."""
    return len(stack.get("/api/cats/?page_size=100").json()["results"])


def test_photos_at_the_limits_checked_at_once_do_not_exhaust_memory(compose_project, free_port):
    stack = boot(compose_project, free_port())
    stack.create_superuser()
    web_before = stack.inspect("web")
    visitors = [Visitor(stack, f"203.0.113.{i + 1}") for i in range(CLIENTS)]
    photos = burst_photos()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(Visitor.log_in, visitors))
    before = memory_reading(stack, "memory.current", "memory.usage_in_bytes")

    start = threading.Barrier(CLIENTS)
    deadline = time.monotonic() + UPLOADS_BOUND_S

    def one(index: int) -> tuple[str, list[int], str]:
        name, photo = photos[index]
        start.wait()
        statuses, text = upload(visitors[index], f"{index}-{name}", photo, deadline)
        return name, statuses, text

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(one, range(CLIENTS)))
    seconds = time.monotonic() - started

    peak = memory_reading(stack, "memory.peak", "memory.max_usage_in_bytes")
    web_after = stack.inspect("web")
    logs = stack.logs("web")
    retries = sum(len(statuses) - 1 for _, statuses, _ in results)
    record(
        "photos at the limits checked at once",
        {
            "clients": CLIENTS,
            "photos": sorted({name for name, _, _ in results}),
            "statuses": [statuses for _, statuses, _ in results],
            "retried_after_503": retries,
            "accepted": sum(statuses[-1] == 302 for _, statuses, _ in results),
            "seconds": round(seconds, 1),
            "web_memory_before_mib": round(before / 2**20),
            "web_memory_peak_mib": round(peak / 2**20),
            "oom_killed": web_after["State"]["OOMKilled"],
        },
    )
    failed = [
        (name, statuses, text[:300]) for name, statuses, text in results if statuses[-1] != 302
    ]
    assert not failed, failed
    assert all(set(statuses[:-1]) <= {503} for _, statuses, _ in results), results
    assert web_after["State"]["OOMKilled"] is False
    assert web_after["RestartCount"] == web_before["RestartCount"]
    assert "SIGKILL" not in logs, [line for line in logs.splitlines() if "SIGKILL" in line]
    assert cats_listed(stack) == CLIENTS
    sizing = python_in_web(
        stack,
        "from django.conf import settings; from app.cats import photos; "
        "memory = settings.PHOTO_CHECK_MEMORY_BYTES; print(photos.slot_count(memory), memory)",
    )
    slots, memory = map(int, sizing.split())
    record("photo-check slots", {"slots": slots, "memory_for_checks_mib": round(memory / 2**20)})


# The media volume on a small tmpfs; mode 1777 lets web's app user write its root, which a new
# tmpfs gives to root.
MEDIA_ON_TMPFS = """\
volumes:
  media:
    driver_opts:
      type: tmpfs
      device: tmpfs
      o: size=2m,mode=1777
"""
# Left free on the full volume: less than the photo below, so its file is written in part.
LEFT_FREE = 64 * 1024


def media_files(stack: Stack) -> set[str]:
    return set(stack.exec("web", "find", "/srv/media", "-type", "f").split())


def test_a_full_media_volume_answers_507_and_leaves_no_file(compose_project, free_port, tmp_path):
    override = tmp_path / "media-on-tmpfs.yaml"
    override.write_text(MEDIA_ON_TMPFS)
    stack = boot(compose_project, free_port(), files=("compose.yaml", str(override)))
    stack.create_superuser()
    visitor = stack.signed_in_client()
    visitor.create_cat("Before", photo=png_bytes())
    photo_url = urlsplit(stack.get("/api/cats/").json()["results"][0]["photo_url"]).path
    assert photo_url.startswith("/media/cats/"), photo_url

    stack.exec(
        "web", "python", "-c",
        "import os; s = os.statvfs('/srv/media'); "
        f"open('/srv/media/filler', 'wb').write(bytes(s.f_bavail * s.f_frsize - {LEFT_FREE}))",
    )  # fmt: skip
    files_before = media_files(stack)
    photo = noise_png(320)
    assert len(photo) > LEFT_FREE

    response = visitor.post_form(
        "/cats/new/",
        {"name": "Too many", "breed": "Tabby", "age": "3"},
        files={"photo": ("cat.png", photo, "image/png")},
    )
    assert response.status_code == 507, response.text[:2000]
    assert "storage is full" in response.text
    assert '<form method="post"' in response.text
    assert media_files(stack) == files_before
    assert cats_listed(stack) == 1
    stack.json_lines("web", lambda line: line["level"] == "ERROR" and "full" in line["message"])

    # The site still serves, photos included, and takes uploads again once there is room.
    assert stack.get("/").status_code == 200
    assert stack.get(photo_url).status_code == 200
    stack.exec("web", "rm", "/srv/media/filler")
    visitor.create_cat("After", photo=photo)
    assert cats_listed(stack) == 2
