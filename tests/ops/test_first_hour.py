"""The first hour, as docs/operations.md's Quickstart writes it: from a fresh clone to the admin's
page, signed in. Once behind a load balancer that ends TLS (the Quickstart's three lines), once
as a trial that starts with the README's `docker compose -f compose.yaml up` and nothing set:
the VM's address then gets a page saying what to do, the trial's settings follow, and once the
hosts are named every other host name is dropped again. The first `up` of a clone that has no
images asks no registry for the project's own.

Only what the test machine needs is added to the operator's steps: the project's name, its
image names and its port on loopback (.env), a git commit of the copy (a clone has one), and
the balancer's addresses (HAProxy reaches nginx from Docker's bridge gateway here).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.harness.balancer import BRIDGES, balancer
from tests.harness.containers import slug
from tests.harness.docker import build_image, docker
from tests.harness.standins import RECIPE_LABEL
from tests.harness.terminal import answered
from tests.ops.conftest import OpsProject, project_copy
from tools.ops.images import base_image

HOST = "cats.example.org"
# The VM's own address, as a newcomer types it into a browser.
VM_ADDRESS = "203.0.113.5"
ADMIN = ("firsthour", "a-long-first-hour-password-7341")
CREATE_SUPERUSER = ("docker", "compose", "run", "--rm", "web", "python", "manage.py",
                    "createsuperuser")  # fmt: skip
PROMPTS = (
    ("Username", ADMIN[0]), ("Email address", "ops@example.org"), ("Password:", ADMIN[1]),
    ("Password (again)", ADMIN[1]),
)  # fmt: skip
SUPERUSER_BOUND_S = 300


@pytest.fixture
def clone(request, run_id: str, tmp_path) -> Iterator[OpsProject]:
    """A copy of the product with nothing in .env but the test machine's lines, committed."""
    name = f"{run_id}-first-{slug(request.node.name.removeprefix('test_'), 14)}"
    with project_copy(name, tmp_path) as copy:
        git = ["git", "-c", "user.name=ops", "-c", "user.email=ops@example.org"]
        for step in (["init", "--quiet"], ["add", "--all"], ["commit", "--quiet", "-m", "clone"]):
            subprocess.run([*git, *step], cwd=copy.directory, check=True, capture_output=True)
        yield copy


@contextmanager
def patched_base(base: str, folder: Path) -> Iterator[None]:
    """`base` replaced by a derived image for the block, then put back. The derived image's
    recipe label differs from every stand-in's, so a run that died inside the block leaves a
    base the next run rebuilds (tests/harness/standins)."""
    original = docker("image", "inspect", "--format", "{{.Id}}", base).stdout.strip()
    (folder / "Dockerfile").write_text(
        f"FROM {base}\nUSER root\nRUN echo patched > /etc/base-patched\n"
        f"LABEL {RECIPE_LABEL}=patched-by-a-test\n"
    )
    user = docker("image", "inspect", "--format", "{{.Config.User}}", base).stdout.strip()
    if user:
        with (folder / "Dockerfile").open("a") as dockerfile:
            dockerfile.write(f"USER {user}\n")
    build_image(folder, base)
    try:
        yield
    finally:
        docker("tag", original, base)


def create_superuser(project: OpsProject) -> None:
    status, printed = answered(CREATE_SUPERUSER, project.directory, PROMPTS, SUPERUSER_BOUND_S)
    assert status == 0, printed
    assert "Superuser created successfully." in printed, printed


class Visitor:
    """A browser: its own cookies, the Host it typed, the Origin it sends with forms."""

    def __init__(self, port: int, host: str, scheme: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.host = host
        self.origin = f"{scheme}://{host}"
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Host": self.host, **kwargs.pop("headers", {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        answer = requests.request(method, self.base + path, headers=headers, timeout=15,
                                  allow_redirects=False, **kwargs)  # fmt: skip
        self.cookies.update(answer.cookies.get_dict())
        return answer

    def sign_in(self, user: tuple[str, str]) -> requests.Response:
        """The admin's page, its login form filled in and sent; the admin's page again."""
        first = self.request("GET", "/admin/")
        assert (first.status_code, first.headers["Location"]) == (302, "/admin/login/?next=/admin/")
        form = self.request("GET", "/admin/login/?next=/admin/")
        assert form.status_code == 200
        sent = self.request(
            "POST", "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": self.cookies["csrftoken"], "username": user[0],
                  "password": user[1], "next": "/admin/"},
            headers={"Origin": self.origin, "Referer": f"{self.origin}/admin/login/"},
        )  # fmt: skip
        assert sent.status_code == 302, sent.text[:500]
        return self.request("GET", "/admin/")


def test_the_quickstart_behind_a_load_balancer(clone, run_id, tmp_path):
    with balancer(run_id, f"{clone.name}-balancer", [("127.0.0.1", clone.port)], healthy=0,
                  https=True) as front:  # fmt: skip
        init = clone.ops("init", "--host", HOST, "--balancer", BRIDGES)
        assert "next: ./ops deploy" in init.stdout
        deployed = clone.ops("deploy")
        assert "the stack is up" in deployed.stdout
        create_superuser(clone)
        front.wait_up(1)
        admin = Visitor(front.port, HOST, "https").sign_in(ADMIN)
        assert admin.status_code == 200
        assert "Site administration" in admin.text

        # Later: a patched nginx base on the VM, as `./ops deploy --refresh-base` pulls one
        # (here a derived image takes the base's tag; the real tag is put back). The checkout
        # is unchanged, yet the next deploy is a new release with a new proxy.
        release = clone.setting("APP_VERSION")
        assert clone.ops("deploy", check=False).returncode == 1
        with patched_base(base_image(clone.directory, "nginx"), tmp_path):
            patched = clone.ops("deploy")
            assert "nginx replaced (a new proxy" in patched.stdout
            assert clone.setting("APP_VERSION") != release
            marker = clone.compose("exec", "-T", "nginx", "cat", "/etc/base-patched")
            assert marker.stdout.strip() == "patched"
            assert Visitor(front.port, HOST, "https").request("GET", "/").status_code == 200


def test_a_trial_from_the_readmes_first_command(clone):
    up = clone.compose("-f", "compose.yaml", "up", "--detach", "--wait")
    built = f"{up.stdout}\n{up.stderr}"
    assert not re.search(r"\b(web|nginx|init-secrets|publish)\s+Pull", built), built
    for image in clone.images:
        assert docker("image", "inspect", f"{image}:latest", check=False).returncode == 0

    # The VM's address, typed into a browser: a page that says what to do.
    page = Visitor(clone.port, VM_ADDRESS, "http").request("GET", "/")
    assert page.status_code == 421
    assert "./ops init --host" in page.text
    assert "DJANGO_ALLOWED_HOSTS" in page.text
    logs = clone.compose("logs", "nginx").stdout
    assert "notice: DJANGO_ALLOWED_HOSTS is not set: serving only localhost 127.0.0.1" in logs

    init = clone.ops("init", "--host", VM_ADDRESS, "--plain-http")
    assert "next: docker compose up -d --wait" in init.stdout
    clone.compose("up", "-d", "--wait")
    create_superuser(clone)
    admin = Visitor(clone.port, VM_ADDRESS, "http").sign_in(ADMIN)
    assert admin.status_code == 200
    assert "Site administration" in admin.text

    # Hosts named: another host name learns nothing, not even that a server answers.
    with pytest.raises(requests.ConnectionError):
        Visitor(clone.port, "other.example", "http").request("GET", "/")
