"""The stack as ops run it (the exact compose.yaml), driven the way the load balancer drives it.

Shared by the stack and faults layers. The tests publish nginx on 127.0.0.1 only and connect
from the host, which reaches the container through the Docker bridge gateway: a private address,
inside nginx's default trusted ranges, so the tests stand where a cloud load balancer stands.
Where they model HTTPS at the load balancer they send `X-Forwarded-Proto: https`, as it does.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
from PIL import Image

from tests.harness.compose import ComposeProject
from tests.harness.docker import docker

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
SITE_HOST = "localhost"
SUPERUSER = ("ops", "a-long-admin-password-1234")
# A fresh stack (images cached, volumes empty) must be healthy within this; measured: README.
UP_BOUND_S = 180
REQUEST_TIMEOUT_S = 15


def record(name: str, values: dict) -> None:
    """Keep a measurement of this run in tests/artifacts (README: Operations quotes them)."""
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "stack-measurements.jsonl").open("a") as out:
        out.write(json.dumps({"measurement": name, **values}) + "\n")


def stack_env(port: int, **overrides: str) -> dict[str, str]:
    """What an operator puts in .env, plus the tests' loopback-only port."""
    return {"HTTP_BIND": "127.0.0.1", "HTTP_PORT": str(port), **overrides}


def png_bytes(size: tuple[int, int] = (32, 24), color: tuple[int, int, int] = (200, 120, 40)):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def noise_png(side: int) -> bytes:
    """A valid PNG of random pixels: it does not compress, so its size is about side² x 3."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


class Client:
    """One visitor behind the load balancer: keeps its cookies itself, because requests will
    not send Secure cookies to an http:// URL, while the visitor's browser talks HTTPS to the
    balancer."""

    def __init__(self, stack: Stack, *, host: str = SITE_HOST, https: bool = True) -> None:
        self.stack = stack
        self.host = host
        self.https = https
        self.cookies: dict[str, str] = {}

    @property
    def origin(self) -> str:
        return f"{'https' if self.https else 'http'}://{self.host}"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Host": self.host, **kwargs.pop("headers", {})}
        if self.https:
            headers.setdefault("X-Forwarded-Proto", "https")
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = requests.request(
            method,
            self.stack.url(path),
            headers=headers,
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT_S,
            **kwargs,
        )
        self.cookies.update(response.cookies.get_dict())
        return response

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post_form(self, path: str, data: Mapping[str, str], **kwargs) -> requests.Response:
        """A same-origin form post, as the browser sends it (CSRF cookie, token, Origin)."""
        if "csrftoken" not in self.cookies:
            self.get(path)
        headers = {"Origin": self.origin, "Referer": f"{self.origin}{path}"}
        fields = {"csrfmiddlewaretoken": self.cookies["csrftoken"], **data}
        return self.request("POST", path, data=fields, headers=headers, **kwargs)

    def create_cat(self, name: str, photo: bytes | None = None, filename: str = "cat.png") -> str:
        """Add a cat through the public form; returns its page's path."""
        files = {"photo": (filename, photo, "image/png")} if photo is not None else None
        response = self.post_form(
            "/cats/new/", {"name": name, "breed": "Tabby", "age": "3"}, files=files
        )
        assert response.status_code == 302, f"{response.status_code}: {response.text[:2000]}"
        return response.headers["Location"]


@dataclass
class Stack:
    project: ComposeProject
    port: int
    up_seconds: float = 0.0
    env: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def client(self, **kwargs) -> Client:
        return Client(self, **kwargs)

    def get(
        self, path: str, *, host: str = SITE_HOST, https: bool = True, **kwargs
    ) -> requests.Response:
        """One request from a fresh visitor (no cookies)."""
        return Client(self, host=host, https=https).get(path, **kwargs)

    def up(self, *services: str, timeout: int = UP_BOUND_S, build: bool = True) -> float:
        """`up -d --wait [--build]`; returns the seconds it took."""
        started = time.monotonic()
        self.project.up(*services, build=build, timeout=timeout)
        return time.monotonic() - started

    def logs(self, service: str) -> str:
        return self.project.compose("logs", "--no-color", service, check=False).stdout

    def json_logs(self, service: str) -> list[dict]:
        """The JSON objects `service` wrote (prefix `service-1  | ` removed)."""
        records = []
        for line in self.logs(service).splitlines():
            _, _, text = line.partition("| ")
            if text.startswith("{"):
                try:
                    records.append(json.loads(text))
                except json.JSONDecodeError:
                    continue
        return records

    def container(self, service: str) -> str:
        container_id = self.project.container_id(service)
        assert container_id, f"no container for {service}"
        return container_id.splitlines()[0]

    def inspect(self, service: str) -> dict:
        return json.loads(docker("container", "inspect", self.container(service)).stdout)[0]

    def exec(self, service: str, *command: str, user: str | None = None) -> str:
        return self.project.exec(service, *command, user=user).stdout

    def gateway_address(self) -> str:
        """The address the host's connections reach nginx from (the frontend network's
        gateway): where these tests stand in for the load balancer."""
        network = f"{self.project.name}_frontend"
        config = json.loads(docker("network", "inspect", network).stdout)[0]["IPAM"]["Config"]
        return config[0]["Gateway"]


def wait_until(
    condition: Callable[[], object], timeout: float, interval: float = 0.5, what: str = ""
) -> object:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (requests.RequestException, AssertionError) as error:
            last_error, result = error, None
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"not within {timeout}s: {what or condition}; last error: {last_error}")


def boot(make_project: Callable[..., ComposeProject], port: int, **kwargs) -> Stack:
    """compose.yaml (or `files`) up with `env` on top of the tests' .env; healthy or raises."""
    files = kwargs.pop("files", ("compose.yaml",))
    env = stack_env(port, **kwargs.pop("env", {}))
    project = make_project(*files, env=env, **kwargs)
    stack = Stack(project, port, env=env)
    stack.up_seconds = stack.up()
    return stack


def dropped(stack: Stack, path: str, host: str) -> bool:
    """nginx's 444: the connection closes before any byte of a response."""
    try:
        stack.get(path, host=host)
    except requests.ConnectionError:
        return True
    return False


HASHED_STATIC = re.compile(r"/static/[^\"']+\.[0-9a-f]{12}\.(?:css|js)")


@contextmanager
def running_stack(
    name: str, env_dir: Path, port: int, env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """A stack shared by several tests (a module's): up, healthy, always taken down."""
    full_env = stack_env(port, **(env or {}))
    project = ComposeProject(name, ["compose.yaml"], env_dir, env=full_env, cwd=REPO)
    stack = Stack(project, port, env=full_env)
    try:
        try:
            stack.up_seconds = stack.up()
        except Exception as error:
            raise AssertionError(f"{error}\n--- logs ---\n{project.logs()}") from None
        yield stack
    finally:
        project.down()


def failure_logs(item) -> list[tuple[str, str]]:
    """Logs of the shared stack a failing test used, for its report."""
    stack = getattr(item, "funcargs", {}).get("shared_stack")
    if not isinstance(stack, Stack):
        return []
    return [(f"logs of {stack.project.describe()}", stack.project.logs() or "(no output)")]


def reconfigured(stack: Stack, env_dir: Path, files: tuple[str, ...] = (), **changes: str) -> Stack:
    """The same project (its containers and volumes) with changed .env values, as when an
    operator edits .env and runs compose again (use `up(build=False)`: same images). The
    original project's teardown removes it."""
    env_dir.mkdir(parents=True, exist_ok=True)
    env = {**stack.env, **changes}
    project = ComposeProject(
        stack.project.name, files or stack.project.files, env_dir, env=env, cwd=REPO
    )
    return Stack(project, stack.port, env=env)


def python_in_web(stack: Stack, code: str) -> str:
    """Run Python in the web container with Django's settings loaded; its last output line."""
    setup = "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'"
    output = stack.exec("web", "python", "-c", f"{setup}; django.setup(); {code}")
    output = output.strip().splitlines()
    return output[-1] if output else ""
