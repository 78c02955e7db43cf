"""What ops configure reaches the containers: every variable in .env.example is either passed by
compose or marked as read elsewhere (the image, ./ops); the ports written in two places agree;
a database URL beside the db service is a clear error, and the documented external-database
override works."""

import json
import re
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import pytest

from tests.harness import REPO
from tests.harness.base_images import postgres_image, service_image
from tests.harness.docker import clean_env, docker
from tests.harness.polling import wait_until
from tests.stack.support import ENV_EXAMPLE, SUPERUSER, boot, env_example_variables, stack_env

DB_IMAGE = service_image(REPO, "db")
# Each override with compose.yaml, and the values its required variables need.
COMBINATIONS = {
    ("compose.yaml",): {},
    ("compose.yaml", "compose.tls.yaml"): {"NGINX_TLS_DIR": "/placeholder"},
    ("compose.yaml", "compose.dev.yaml"): {},
    ("compose.yaml", "compose.secrets.yaml"): {"SECRETS_DIR": "/placeholder"},
    ("compose.yaml", "compose.external-db.yaml"): {},
    ("compose.yaml", "compose.worker.yaml"): {},
    ("compose.yaml", "compose.monitoring.yaml"): {},
}
# Values that parse wherever a variable ends up: a string, a port or size, an address, a path,
# a pull policy.
PROBES = ("probe-value-1", "12345", "127.0.0.9", "/probe/value", "never", "false")
# Read by a container but no ops setting: the official nginx entrypoint's own, and the nginx
# image's fixed listen ports (compose publishes them; test_ports_written_twice_agree).
NOT_OPS_SETTINGS = {
    "NGINX_LOCAL_RESOLVERS",
    "NGINX_ENTRYPOINT_QUIET_LOGS",
    "NGINX_HTTP_PORT",
    "NGINX_HTTPS_PORT",
}


@cache
def rendered(files: tuple[str, ...], extra: tuple[tuple[str, str], ...] = ()) -> str | None:
    """`docker compose config` as JSON with .env.example and `extra` set; None if it fails."""
    with tempfile.NamedTemporaryFile("w", suffix=".env", delete=False) as file:
        file.write("".join(f"{name}='{value}'\n" for name, value in extra))
    overrides = Path(file.name)
    try:
        result = subprocess.run(
            ["docker", "compose", "--project-name", "config-probe",
             *[arg for f in files for arg in ("--file", f)],
             "--env-file", str(ENV_EXAMPLE), "--env-file", str(overrides),
             "config", "--format", "json"],
            cwd=REPO, env=clean_env(), capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        overrides.unlink()
    return result.stdout if result.returncode == 0 else None


def consumed_by_compose(*names: str) -> bool | None:
    """Setting `names` (all at once) changes what compose gives some container, in some
    combination; None when a combination's config fails with them set, which says nothing."""
    for files, required in combinations_naming(names):
        base = tuple(required.items())
        baseline = rendered(files, base)
        assert baseline is not None, f"compose config fails for {files}"
        for value in PROBES:
            changed = rendered(files, tuple({**required, **dict.fromkeys(names, value)}.items()))
            if changed is None and len(names) > 1:
                return None
            if changed is not None and changed != baseline:
                return True
    return False


def combinations_naming(names: tuple[str, ...]) -> list[tuple[tuple[str, ...], dict]]:
    """COMBINATIONS, those whose override names one of `names` first: only the order of the
    search, which each `docker compose config` makes slow (over 100 variables)."""

    def named(files: tuple[str, ...]) -> bool:
        return any(name in (REPO / file).read_text() for file in files[1:] for name in names)

    return sorted(COMBINATIONS.items(), key=lambda item: not named(item[0]))


def test_every_env_example_variable_reaches_a_container_or_says_image_only():
    variables = env_example_variables()
    assert len(variables) > 40, variables
    image_only = sorted(name for name, marked in variables.items() if marked)
    # One search for all the variables marked as read elsewhere: none may reach compose. Only
    # when some does (or the search says nothing) is each one searched, to name it.
    each_image_only = image_only if consumed_by_compose(*image_only) is not False else []
    problems = [
        f"{name} is marked as not passed, but compose passes it"
        for name in each_image_only
        if consumed_by_compose(name)
    ]
    problems += [
        f"{name}: compose ignores it, and it is not marked as read elsewhere"
        for name, marked in sorted(variables.items())
        if not marked and not consumed_by_compose(name)
    ]
    assert problems == []


def test_every_variable_compose_reads_is_in_env_example():
    variables = env_example_variables()
    interpolated = set()
    for files in COMBINATIONS:
        for file in files:
            interpolated |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (REPO / file).read_text()))
    interpolated.discard("COMPOSE_PROJECT_NAME")
    assert sorted(interpolated - set(variables)) == []


def variables_read_by_the_containers() -> set[str]:
    """Names the web image's code and nginx's start script read from the environment."""
    names = set()
    python = [*REPO.glob("config/*.py"), *REPO.glob("scripts/*.py")]
    for path in python:
        for method, name in re.findall(
            r"\.(raw|string|secret|boolean|integer|strings|choice|path|database_url)\(\s*"
            r"\"([A-Z][A-Z0-9_]*)\"",
            path.read_text(),
        ):
            names.add(name)
            if method in ("secret", "database_url"):
                names.add(f"{name}_FILE")
    for path in (REPO / "scripts/entrypoint", REPO / "nginx/render-site-config.sh"):
        names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):-", path.read_text()))
    return names - NOT_OPS_SETTINGS


def test_every_variable_the_containers_read_is_in_env_example():
    read = variables_read_by_the_containers()
    assert {"DJANGO_SECRET_KEY", "GUNICORN_WORKERS", "NGINX_RATE_LIMIT"} <= read
    assert sorted(read - set(env_example_variables())) == []


def image_env(image: str) -> dict[str, str]:
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    return dict(entry.split("=", 1) for entry in config["Env"])


def published_targets(files: tuple[str, ...], service: str) -> list[int]:
    config = json.loads(rendered(files, tuple(COMBINATIONS[files].items())))
    return [int(port["target"]) for port in config["services"][service].get("ports", [])]


def service_images(project) -> dict[str, str]:
    config = json.loads(project.compose("config", "--format", "json").stdout)["services"]
    return {name: service.get("image", "") for name, service in config.items()}


def test_ports_written_twice_agree(compose_project):
    """nginx's upstream port is the web image's GUNICORN_PORT, and compose publishes the
    ports the images listen on."""
    project = compose_project()
    project.compose("build", timeout=900)
    images = service_images(project)
    web, nginx = image_env(images["web"]), image_env(images["nginx"])

    template = (REPO / "nginx/templates/site.conf.template").read_text()
    upstream = r"server \$\{NGINX_UPSTREAM_HOST\}:(\d+) resolve\b"
    assert re.findall(upstream, template) == [web["GUNICORN_PORT"]]
    # A container that refused a connection is skipped no longer than a DNS answer is kept.
    assert re.findall(r"fail_timeout=(\w+);", template) == re.findall(
        r"resolver .* valid=(\w+)", template
    )
    assert published_targets(("compose.yaml", "compose.dev.yaml"), "web") == [
        int(web["GUNICORN_PORT"])
    ]
    assert published_targets(("compose.yaml",), "nginx") == [int(nginx["NGINX_HTTP_PORT"])]
    assert published_targets(("compose.yaml", "compose.tls.yaml"), "nginx") == [
        int(nginx["NGINX_HTTP_PORT"]),
        int(nginx["NGINX_HTTPS_PORT"]),
    ]


@pytest.mark.parametrize(
    ("files", "extra"),
    [(("compose.yaml",), ()), (("compose.yaml", "compose.secrets.yaml"), (("SECRETS_DIR", "/s"),))],
)
def test_web_signs_in_as_the_role_db_roles_makes(files, extra):
    """web signs in as the role db-roles makes, with the generated secrets and with files of
    your own (compose.secrets.yaml points both at its own file)."""
    services = json.loads(rendered(files, extra))["services"]
    web, roles = services["web"]["environment"], services["db-roles"]["environment"]
    assert web["POSTGRES_USER"] == roles["POSTGRES_APP_USER"] != roles["POSTGRES_USER"]
    assert web["POSTGRES_PASSWORD_FILE"] == roles["POSTGRES_APP_PASSWORD_FILE"]
    assert web["POSTGRES_DB"] == roles["POSTGRES_DB"]


def test_one_shots_run_the_image_web_builds(compose_project):
    """One build, one image: init-secrets and publish name web's image and never pull it."""
    project = compose_project()
    config = json.loads(project.compose("config", "--format", "json").stdout)["services"]
    assert "build" in config["web"]
    for one_shot in ("init-secrets", "publish"):
        assert "build" not in config[one_shot]
        assert config[one_shot]["image"] == config["web"]["image"]
        assert config[one_shot]["pull_policy"] == "never"
    images = set(project.compose("config", "--images").stdout.split())
    assert images == {config["web"]["image"], config["nginx"]["image"], DB_IMAGE}


def test_database_url_beside_the_db_service_is_a_clear_error(compose_project, free_port):
    """DATABASE_URL in .env is passed to web; with the db service's POSTGRES_HOST beside it,
    web refuses to start instead of silently using one of the two."""
    project = compose_project(
        env=stack_env(free_port(), DATABASE_URL="postgres://u:p@elsewhere:5432/cats")
    )
    project.compose("up", "--detach", "--build", "web", timeout=900)
    message = "error: DATABASE_URL and POSTGRES_HOST are both set; set only one"
    wait_until(lambda: message in project.logs("web"), 60, what="web's configuration error")
    web = json.loads(docker("container", "inspect", project.container_id("web")).stdout)[0]
    assert web["State"]["Health"]["Status"] != "healthy"
    assert "Traceback" not in project.logs("web")


# Test only: the external database's network, which web reaches as it would a VPC's.
EXTERNAL_DB_NETWORK_OVERRIDE = """
services:
  web:
    networks: [external-db]
networks:
  external-db:
    name: ${EXTERNAL_DB_NETWORK:?}
    external: true
"""


def test_external_database_through_the_documented_override(
    containers, compose_project, free_port, tmp_path
):
    network = containers.network()
    database = containers.run(
        postgres_image(REPO),
        env={"POSTGRES_USER": "ext", "POSTGRES_PASSWORD": "ext-password", "POSTGRES_DB": "extdb"},
        options=["--network", network, "--network-alias", "external-db"],
    )
    wait_until(
        lambda: (
            database.exec(
                "pg_isready", "--quiet", "--host=127.0.0.1", "--username=ext", check=False
            ).returncode
            == 0
        ),
        60,
        what="the external database ready",
    )
    network_override = tmp_path / "external-db-network.yaml"
    network_override.write_text(EXTERNAL_DB_NETWORK_OVERRIDE)

    stack = boot(
        compose_project,
        free_port(),
        files=("compose.yaml", "compose.external-db.yaml", network_override),
        env={
            "DATABASE_URL": "postgres://ext:ext-password@external-db:5432/extdb",
            "EXTERNAL_DB_NETWORK": network,
        },
    )
    assert {c["Service"] for c in stack.project.ps()} == {"init-secrets", "publish", "web", "nginx"}
    assert stack.get("/readyz", https=False).status_code == 200
    stack.project.run(
        "web", "python", "manage.py", "createsuperuser", "--noinput",
        "--username", SUPERUSER[0], "--email", "ops@example.com",
        env={"DJANGO_SUPERUSER_PASSWORD": SUPERUSER[1]},
    )  # fmt: skip
    users = database.exec(
        "psql", "--username=ext", "--dbname=extdb", "--tuples-only", "--no-align",
        "--command=SELECT username FROM auth_user",
    ).stdout.split()  # fmt: skip
    assert users == [SUPERUSER[0]]
