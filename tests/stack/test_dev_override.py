"""compose.dev.yaml on top of compose.yaml: the checkout mounted, autoreload, DEBUG."""

import re
import shutil
import subprocess
import time
from pathlib import Path

import requests

from tests.harness import REPO
from tests.harness.polling import wait_until
from tests.stack.support import boot

RELOAD_BOUND_S = 30
# gunicorn's reloader polls once a second and takes a file's first modification time when it
# first sees the module, which Django imports on the first request.
RELOADER_SETTLE_S = 2.5


def checkout_copy(destination: Path) -> Path:
    """The project's files (what git would commit) in a folder of their own, so the test can
    edit code the way a developer does without touching the real checkout."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listing.split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # The container's app user reads the mounted code.
    for path in [destination, *destination.rglob("*")]:
        path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
    return destination


def test_development_override(compose_project, free_port, tmp_path):
    checkout = checkout_copy(tmp_path / "checkout")
    web_port = free_port()
    stack = boot(
        compose_project,
        free_port(),
        files=(checkout / "compose.yaml", checkout / "compose.dev.yaml"),
        project_directory=checkout,
        env={"DEV_WEB_PORT": str(web_port)},
    )

    def web(path: str) -> requests.Response:
        return requests.get(
            f"http://127.0.0.1:{web_port}{path}", headers={"Host": "localhost"}, timeout=10
        )

    # Plain HTTP, DEBUG's technical 404 page, through nginx and on gunicorn's own port.
    assert stack.get("/", https=False).status_code == 200
    assert "Page not found at /nope/" in stack.get("/nope/", https=False).text
    assert web("/").status_code == 200

    # A Python edit restarts the workers (gunicorn --reload) and takes effect.
    time.sleep(RELOADER_SETTLE_S)
    api = checkout / "app/cats/api.py"
    source = api.read_text()
    assert "DEFAULT_PAGE_SIZE = 20" in source
    api.write_text(source.replace("DEFAULT_PAGE_SIZE = 20", "DEFAULT_PAGE_SIZE = 7"))
    wait_until(
        lambda: web("/api/cats/").json()["page_size"] == 7,
        RELOAD_BOUND_S,
        what="the edited page size served",
    )
    assert re.search(r"Worker reloading: .*api\.py modified", stack.logs("web"))
    # A template edit shows once the workers restarted.
    template = checkout / "app/cats/templates/cats/cat_list.html"
    template.write_text(
        template.read_text().replace(
            "{% block content %}", "{% block content %}<p>edited-template</p>", 1
        )
    )
    wait_until(lambda: "edited-template" in web("/").text, RELOAD_BOUND_S, what="template")

    # The real checkout was never touched.
    assert "DEFAULT_PAGE_SIZE = 20" in (REPO / "app/cats/api.py").read_text()
