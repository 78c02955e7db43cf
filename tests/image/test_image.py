"""What the built image contains, and what it leaves out."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness.base_images import Dockerfile, dockerfile_base_images
from tests.harness.docker import build_image, docker, image_config
from tests.image import build_cache
from tests.image.conftest import REPO, WEB_PORT

APP_UID = "10001"
# The runtime stage's base, as the Dockerfile names it (its ARG default resolved).
BASE_IMAGE = dockerfile_base_images(Dockerfile(REPO / "Dockerfile"))[-1]


def sh(image: str, script: str) -> subprocess.CompletedProcess[str]:
    return docker("run", "--rm", image, "sh", "-c", script, check=False)


def test_runs_as_a_fixed_non_root_user_that_cannot_change_the_code(web_image):
    assert image_config(web_image)["User"] == f"{APP_UID}:{APP_UID}"
    result = sh(
        web_image,
        "id -u; id -g; stat -c '%u %a' /srv/media; "
        "touch /app/config/x 2>&1; touch /srv/static/x 2>&1; touch /srv/media/x && echo media-ok",
    )
    lines = result.stdout.splitlines()
    assert lines[:3] == [APP_UID, APP_UID, f"{APP_UID} 755"]
    assert "Permission denied" in lines[3]
    assert "Permission denied" in lines[4]
    assert lines[5] == "media-ok"


def test_build_users_uid_and_gid_come_from_build_arguments(web_image):
    tag = "catcollector-test/web:uid"
    build_image(REPO, tag, build_args={"APP_UID": "12345", "APP_GID": "12346"})
    try:
        assert image_config(tag)["User"] == "12345:12346"
        result = sh(tag, "id -u; id -g; stat -c '%u:%g' /srv/media")
        assert result.stdout.split() == ["12345", "12346", "12345:12346"]
    finally:
        docker("image", "rm", tag, check=False)


def test_no_compiler_no_caches_no_wheels_in_the_runtime(web_image):
    """Compared with the base image, which ships ensurepip's own wheels."""
    script = (
        "for tool in gcc cc c++ make; do command -v $tool; done; "
        "find / -xdev \\( -name '*.whl' -o -path '*/.cache/pip' -o -name '*.tar.gz' \\) -print; "
        "find /var/lib/apt/lists /var/cache/apt -type f; "
        "ls /opt/venv/bin/pip* 2>/dev/null; true"
    )
    base = set(sh(BASE_IMAGE, script).stdout.split())
    runtime = set(sh(web_image, script).stdout.split())
    # An archive a package installs as its own data (dateutil's time zones) is no leftover.
    packaged = set(
        sh(
            web_image,
            "cd /opt/venv/lib/python3*/site-packages && "
            'cut -d, -f1 ./*.dist-info/RECORD | sed "s|^|$PWD/|"',
        ).stdout.split()
    )
    assert runtime - base - packaged == set()


def test_dependencies_are_installed_with_the_network_off():
    """BuildKit gives the install step no network at all (`RUN --network=none`), so it can
    only use the builder's hash-checked wheels, whatever pip's options say. The built image
    keeps no trace of the flag, so this reads the Dockerfile."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    [install] = [line for line in text.splitlines() if "/opt/venv/bin/python install" in line]
    flags = install.split("python -m venv")[0].split()
    assert flags[0] == "RUN"
    assert "--network=none" in flags


def test_dependencies_and_code_are_compiled_to_bytecode_at_build_time(web_image):
    result = sh(
        web_image,
        "echo $PYTHONDONTWRITEBYTECODE $PYTHONUNBUFFERED; "
        "ls /app/config/__pycache__/settings.cpython-313.pyc "
        "/app/app/cats/__pycache__/views.cpython-313.pyc; "
        "ls /opt/venv/lib/python3.13/site-packages/django/__pycache__/ | grep -c pyc",
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "1 1"
    assert len(lines) == 4, result.stderr
    assert int(lines[3]) > 0


def test_static_files_are_collected_at_build_time(web_image):
    result = sh(web_image, "cd /srv/static && ls staticfiles.json && ls cats | grep -c '\\.gz$'")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.splitlines()[1]) > 0
    manifest = json.loads(sh(web_image, "cat /srv/static/staticfiles.json").stdout)
    assert "cats/style.css" in manifest["paths"]


def test_exec_form_entrypoint_under_tini_and_healthcheck_without_curl(web_image):
    config = image_config(web_image)
    assert config["Entrypoint"] == ["tini", "--", "/app/scripts/entrypoint"]
    assert config["Cmd"] == ["gunicorn", "--config", "python:config.gunicorn"]
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "/app/scripts/healthcheck.py"]
    # Longer than the entrypoint's waits before gunicorn binds (database 60 s, another
    # container's migrations 300 s), probed often enough that a quick start is seen at once.
    seconds = 10**9
    assert config["Healthcheck"]["StartPeriod"] > (60 + 300) * seconds
    assert config["Healthcheck"]["StartInterval"] <= 2 * seconds
    # The port is defined once (ENV) and EXPOSE names the same one.
    assert f"GUNICORN_PORT={WEB_PORT}" in config["Env"]
    assert set(config["ExposedPorts"]) == {f"{WEB_PORT}/tcp"}
    assert sh(web_image, "command -v curl wget").stdout == ""


def test_the_health_probe_does_not_import_django(web_image):
    script = (
        "import runpy, sys; runpy.run_path('/app/scripts/healthcheck.py'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'config', 'app'}))"
    )
    result = docker("run", "--rm", web_image, "python", "-c", script)
    assert result.stdout.strip() == "[]"


def test_the_health_probe_fails_when_nothing_answers(web_image):
    result = docker("run", "--rm", web_image, "python", "/app/scripts/healthcheck.py", check=False)
    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy: ")


def test_oci_labels_come_from_build_arguments(web_image):
    tag = "catcollector-test/web:labels"
    args = {
        "VERSION": "1.4.2",
        "REVISION": "0123abc",
        "SOURCE": "https://git.example.com/ops/catcollector",
    }
    build_image(REPO, tag, build_args=args)
    try:
        labels = image_config(tag)["Labels"]
    finally:
        docker("image", "rm", tag, check=False)
    assert labels["org.opencontainers.image.version"] == "1.4.2"
    assert labels["org.opencontainers.image.revision"] == "0123abc"
    assert labels["org.opencontainers.image.source"] == args["SOURCE"]


def test_dockerignore_keeps_secrets_history_media_and_artefacts_out_of_the_context(tmp_path):
    """Builds a probe image from a context shaped like a working copy, with the project's
    own .dockerignore, and lists what reached the builder."""
    context = tmp_path / "context"
    shutil.copytree(REPO / "app", context / "app", ignore=shutil.ignore_patterns("*.pyc"))
    wanted = ["manage.py", "requirements/base.txt", "config/settings.py", "scripts/entrypoint"]
    unwanted = [
        ".git/config", ".env", ".env.production", "config/.env", "media/cats/a.jpg",
        "app/media/x.jpg", "tests/artifacts/log.txt", "tests/unit/test_x.py", "db.sqlite3",
        "app/cats/__pycache__/views.cpython-313.pyc", "requirements/test.txt", ".venv/bin/python",
        "tools/lock-requirements", "node_modules/x/index.js", "docker-compose.override.yml",
    ]  # fmt: skip
    for name in wanted + unwanted:
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (context / name).write_text("x")
    shutil.copy(REPO / ".dockerignore", context / ".dockerignore")
    probe = tmp_path / "probe.Dockerfile"
    probe.write_text(f"FROM {BASE_IMAGE}\nCOPY . /context\n")
    tag = "catcollector-test/dockerignore-probe:latest"
    build_image(context, tag, dockerfile=probe)
    try:
        listing = docker("run", "--rm", tag, "find", "/context", "-type", "f").stdout
    finally:
        docker("image", "rm", tag, check=False)
    shipped = {line.removeprefix("/context/") for line in listing.split()}
    assert set(wanted) <= shipped
    assert shipped.isdisjoint(unwanted), shipped & set(unwanted)
    assert "app/cats/views.py" in shipped


def test_a_code_change_rebuilds_without_reinstalling_dependencies(web_image, tmp_path):
    """Layers in change order: after a one-line change to application code, the steps that
    download and install the requirements come from the build cache. Built in a copy of the
    context, which the engine's cache already holds (web_image), then built again."""
    tag = "catcollector-test/web:layers"
    context = build_cache.copy_build_context(tmp_path / "context")
    try:
        build_cache.build(context, tag)
        build_cache.change_code(context)
        _, log = build_cache.build(context, tag)
    finally:
        docker("image", "rm", tag, check=False)
    for instruction in build_cache.DEPENDENCY_STEPS:
        assert build_cache.was_cached(log, instruction), build_cache.step_lines(log, instruction)
    # The change itself was seen: the code was copied again.
    assert not build_cache.was_cached(log, "COPY app ./app")


def test_hadolint_passes_on_the_dockerfile():
    result = subprocess.run(
        [Path(sys.executable).parent / "hadolint", REPO / "Dockerfile"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
