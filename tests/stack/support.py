"""The stack as ops run it (the exact compose.yaml), driven the way the load balancer drives it.

Shared by the stack and faults layers. The tests publish nginx on 127.0.0.1 only and connect
from the host, which reaches the container through the Docker bridge gateway, and name those
gateways' ranges as the load balancer's (NGINX_TRUSTED_PROXIES, tests.harness.balancer.BRIDGES),
so the tests stand where a cloud load balancer stands.
Where they model HTTPS at the load balancer they send `X-Forwarded-Proto: https`, as it does.

"Never reached web" is read from nginx's own access line for the request (an empty
`upstream_status`), never from the absence of a line in web's log, which can lag behind.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
from PIL import Image

from tests.harness import REPO
from tests.harness.balancer import BRIDGES
from tests.harness.base_images import dockerfile_base
from tests.harness.compose import ComposeProject
from tests.harness.docker import RUN_LABEL, docker
from tests.harness.polling import wait_until

SITE_HOST = "localhost"
SUPERUSER = ("ops", "a-long-admin-password-1234")
# A fresh stack (images cached, volumes empty) must be healthy within this (docs/operations.md,
# Measured).
UP_BOUND_S = 180
REQUEST_TIMEOUT_S = 15
LOG_WAIT_S = 15


ENV_EXAMPLE = REPO / ".env.example"
# Variables compose does not pass say so, with who reads them instead.
NOT_PASSED = re.compile(r"(image|\./ops|stack\.yaml) only: compose does not pass this")
VARIABLE_LINE = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=")


def env_example_variables() -> dict[str, bool]:
    """Variable name -> marked as not passed by compose. A comment block describes the
    variable lines directly under it."""
    variables: dict[str, bool] = {}
    block: list[str] = []
    previous_was_variable = False
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = VARIABLE_LINE.match(line)
        if match:
            variables[match.group(1)] = any(NOT_PASSED.search(comment) for comment in block)
        elif line.startswith("#"):
            if previous_was_variable:
                block = []
            block.append(line)
        else:
            block = []
        previous_was_variable = bool(match)
    return variables


def stack_env(port: int, **overrides: str) -> dict[str, str]:
    """What an operator puts in .env (the balancer's addresses: where the tests stand), plus
    the tests' loopback-only port."""
    return {
        "HTTP_BIND": "127.0.0.1", "HTTP_PORT": str(port), "NGINX_TRUSTED_PROXIES": BRIDGES,
        **overrides,
    }  # fmt: skip


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

    def log_in(self, user: tuple[str, str] = SUPERUSER) -> None:
        """Sign in through the admin's login form, as a browser does (CSRF cookie and token,
        then the session cookie), all through nginx."""
        response = self.post_form(
            "/admin/login/", {"username": user[0], "password": user[1], "next": "/admin/"}
        )
        assert response.status_code == 302, f"login: {response.status_code} {response.text[:500]}"
        assert "sessionid" in self.cookies

    def create_cat(self, name: str, photo: bytes | None = None, filename: str = "cat.png") -> str:
        """Add a cat through the form (sign in first); returns its page's path."""
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

    def create_superuser(self, user: tuple[str, str] = SUPERUSER) -> None:
        """The documented way (docs/operations.md): a one-off web container running
        createsuperuser --noinput."""
        self.project.run(
            "web", "python", "manage.py", "createsuperuser", "--noinput",
            "--username", user[0], "--email", f"{user[0]}@example.com",
            env={"DJANGO_SUPERUSER_PASSWORD": user[1]},
        )  # fmt: skip

    def signed_in_client(self, **kwargs) -> Client:
        client = Client(self, **kwargs)
        client.log_in()
        return client

    def json_lines(
        self, service: str, condition: Callable[[dict], bool], count: int = 1
    ) -> list[dict]:
        """`service`'s JSON log lines matching `condition`, once there are `count` of them (a
        log can lag behind the response by a moment); fails after LOG_WAIT_S."""

        def matching() -> list[dict] | None:
            found = [line for line in self.json_logs(service) if condition(line)]
            return found if len(found) >= count else None

        return wait_until(matching, LOG_WAIT_S, what=f"{count} matching {service} log line(s)")

    def nginx_lines(self, condition: Callable[[dict], bool], count: int = 1) -> list[dict]:
        return self.json_lines("nginx", condition, count)

    def gateway_address(self) -> str:
        """The address the host's connections reach nginx from (the frontend network's
        gateway): where these tests stand in for the load balancer."""
        network = f"{self.project.name}_frontend"
        config = json.loads(docker("network", "inspect", network).stdout)[0]["IPAM"]["Config"]
        return config[0]["Gateway"]


def boot(make_project: Callable[..., ComposeProject], port: int, **kwargs) -> Stack:
    """compose.yaml (or `files`) up with `env` on top of the tests' .env; healthy or raises."""
    files = kwargs.pop("files", ("compose.yaml",))
    env = stack_env(port, **kwargs.pop("env", {}))
    project = make_project(*files, env=env, **kwargs)
    stack = Stack(project, port, env=env)
    stack.up_seconds = stack.up()
    return stack


def never_reached_web(line: dict) -> bool:
    """nginx answered this request itself: it asked no upstream."""
    return line["upstream_status"] == ""


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
    name: str,
    env_dir: Path,
    port: int,
    env: Mapping[str, str] | None = None,
    files: tuple[str, ...] = ("compose.yaml",),
) -> Iterator[Stack]:
    """A stack shared by several tests (a module's): up, healthy, always taken down."""
    full_env = stack_env(port, **(env or {}))
    project = ComposeProject(name, list(files), env_dir, env=full_env, cwd=REPO)
    stack = Stack(project, port, env=full_env)
    try:
        try:
            stack.up_seconds = stack.up()
        except Exception as error:
            raise AssertionError(f"{error}\n--- logs ---\n{project.logs()}") from None
        yield stack
    finally:
        project.down()


# A network with a public-looking subnet (TEST-NET-2: documentation space, never routed), for a
# client nginx sees as a visitor reaching the VM directly, outside every trusted range.
PUBLIC_SUBNET = "198.51.100.0/24"
OUTSIDER_ADDRESS = "198.51.100.50"
# Any image with curl; nginx's base is already here.
CURL_IMAGE = dockerfile_base(REPO, "nginx/Dockerfile", named_contexts=frozenset({"web"}))


@contextmanager
def public_network(stack: Stack, run_id: str) -> Iterator[tuple[str, str]]:
    """nginx attached to a PUBLIC_SUBNET network of its own: (network name, nginx's address)."""
    network = f"{run_id}-public-{uuid.uuid4().hex[:8]}"
    docker(
        "network", "create", "--subnet", PUBLIC_SUBNET, "--label", f"{RUN_LABEL}={run_id}", network
    )
    nginx = stack.container("nginx")
    try:
        docker("network", "connect", network, nginx)
        networks = json.loads(docker("container", "inspect", nginx).stdout)[0]["NetworkSettings"]
        yield network, networks["Networks"][network]["IPAddress"]
    finally:
        docker("network", "disconnect", "--force", network, nginx, check=False)
        docker("network", "rm", network)


def failure_logs(item) -> list[tuple[str, str]]:
    """Logs of the module-wide stacks a failing test used (a Stack fixture, or one in a
    tuple), for its report; per-test projects get theirs from the engine plugin."""
    stacks = []
    for value in getattr(item, "funcargs", {}).values():
        for candidate in value if isinstance(value, tuple) else (value,):
            if isinstance(candidate, Stack) and candidate not in stacks:
                stacks.append(candidate)
    return [
        (f"logs of {stack.project.describe()}", stack.project.logs() or "(no output)")
        for stack in stacks
    ]


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


# What web's role is, asked from web (python_in_web): its name, superuser, may create roles,
# may create databases, owns the database, and how many tables, sequences and views it does
# not own.
ROLE_FACTS = (
    "from django.db import connection; c = connection.cursor(); "
    'c.execute("SELECT current_user, r.rolsuper, r.rolcreaterole, r.rolcreatedb, '
    "pg_get_userbyid(d.datdba) = current_user, "
    "(SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace "
    "AND relkind IN ('r', 'S', 'v') AND relowner <> r.oid) "
    "FROM pg_roles r, pg_database d WHERE r.rolname = current_user "
    'AND d.datname = current_database()"); print(list(c.fetchone()))'
)
APP_ROLE_FACTS = "['catcollector_app', False, False, False, True, 0]"


def python_in_web(stack: Stack, code: str) -> str:
    """Run Python in the web container with Django's settings loaded; its last output line."""
    setup = "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'"
    output = stack.exec("web", "python", "-c", f"{setup}; django.setup(); {code}")
    output = output.strip().splitlines()
    return output[-1] if output else ""
