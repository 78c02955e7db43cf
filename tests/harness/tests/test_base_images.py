"""Deriving the base images from Dockerfiles and the compose configuration."""

import subprocess
from pathlib import Path

import pytest

from tests.harness.base_images import (
    BaseImageError,
    Dockerfile,
    compose_base_images,
    compose_dockerfiles,
    dockerfile_base,
    dockerfile_base_images,
    project_base_images,
)


def images(text: str, **kwargs) -> list[str]:
    return dockerfile_base_images(Dockerfile(Path("Dockerfile"), text=text, **kwargs))


def test_from_lines_with_stage_names_and_scratch_skipped():
    text = """
FROM python:3.13-slim-trixie AS builder
RUN pip wheel --wheel-dir /wheels .
FROM builder AS tested
FROM scratch AS empty
FROM python:3.13-slim-trixie
COPY --from=builder /wheels /wheels
COPY --from=0 /wheels /again
"""
    assert images(text) == ["python:3.13-slim-trixie"]


def test_arg_defaults_resolved_in_every_spelling():
    text = """
ARG PYTHON_VERSION=3.13
ARG DEBIAN="trixie"
ARG NGINX_IMAGE
FROM python:${PYTHON_VERSION}-slim-$DEBIAN AS base
FROM ${NGINX_IMAGE:-nginx:1.30-trixie}
"""
    assert images(text) == ["python:3.13-slim-trixie", "nginx:1.30-trixie"]


def test_build_args_override_arg_defaults():
    text = "ARG TAG=17-trixie\nFROM postgres:${TAG}\n"
    assert images(text, build_args={"TAG": "18-trixie"}) == ["postgres:18-trixie"]


def test_arg_without_default_or_build_arg_is_an_error_naming_the_file():
    with pytest.raises(BaseImageError, match=r"Dockerfile .*\$BASE has no default"):
        images("ARG BASE\nFROM $BASE\n")


def test_args_declared_after_the_first_from_do_not_apply_to_later_froms():
    text = "FROM python:3.13-slim-trixie\nARG LATER=x\nFROM nginx:${LATER:-1.30-trixie}\n"
    assert images(text) == ["python:3.13-slim-trixie", "nginx:1.30-trixie"]


def test_platform_flag_continuations_comments_and_heredocs():
    text = """
FROM --platform=$BUILDPLATFORM \\
    # a comment inside a continuation
    python:3.13-slim-trixie AS builder
RUN <<SCRIPT
FROM this-is-heredoc-text:not-an-image
SCRIPT
COPY --from=nginx:1.30-trixie --chown=0:0 /etc/nginx/mime.types /tmp/
"""
    assert images(text) == ["python:3.13-slim-trixie", "nginx:1.30-trixie"]


def test_named_build_contexts_are_not_images():
    text = "FROM nginx:1.30-trixie\nCOPY --from=web /srv/static /srv/static\nFROM web AS x\n"
    assert images(text, named_contexts=frozenset({"web"})) == ["nginx:1.30-trixie"]


def test_escape_directive():
    text = "# escape=`\nFROM `\n  python:3.13-slim-trixie\n"
    assert images(text) == ["python:3.13-slim-trixie"]


CONFIG = {
    "name": "catcollector",
    "services": {
        "db": {"image": "postgres:17-trixie"},
        "web": {
            "image": "catcollector-web",
            "build": {"context": "/repo", "dockerfile": "Dockerfile", "args": {"UID": 10001}},
        },
        "nginx": {
            "build": {
                "context": "/repo/nginx",
                "additional_contexts": {"web": "service:web"},
            }
        },
        "tools": {"build": {"context": "/repo", "dockerfile_inline": "FROM busybox:1\n"}},
        # Runs what siblings build: compose's default name for nginx's image, web's own name.
        "proxy-check": {"image": "catcollector-nginx", "pull_policy": "never"},
        "init": {"image": "catcollector-web", "pull_policy": "never"},
    },
}


def test_compose_images_are_those_of_services_without_build():
    assert compose_base_images(CONFIG) == ["postgres:17-trixie"]


def test_an_override_that_drops_the_building_service_still_runs_the_projects_image():
    # compose.external-db.yaml: no db service, while the tools still run the db image.
    override = {"name": "catcollector", "services": {
        "restore-check": {"image": "catcollector/db:17", "pull_policy": "never"}}}  # fmt: skip
    assert compose_base_images(override) == ["catcollector/db:17"]
    assert compose_base_images(override, frozenset({"catcollector/db:17"})) == []


def test_compose_dockerfiles_carry_build_args_contexts_and_inline_text():
    found = {str(d.path): d for d in compose_dockerfiles(CONFIG, Path("/repo"))}
    assert found["/repo/Dockerfile"].build_args == {"UID": "10001"}
    assert found["/repo/nginx/Dockerfile"].named_contexts == {"web"}
    inline = next(d for d in found.values() if d.text)
    assert dockerfile_base_images(inline) == ["busybox:1"]


def git_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", *files], check=True)
    return tmp_path


def test_project_base_images_from_tracked_files_and_compose(tmp_path):
    repo = git_repo(
        tmp_path,
        {
            "Dockerfile": "ARG PY=3.13\nFROM python:${PY}-slim-trixie\n",
            "nginx/Dockerfile": "FROM nginx:1.30-trixie\nCOPY --from=web /a /a\n",
            "tests/harness/standins/nginx/Dockerfile": "ARG ROOTFS\nFROM ${ROOTFS}\n",
        },
    )
    (repo / "docs").mkdir()
    (repo / "docs" / "Dockerfile").write_text("FROM ignored-by-git:1\n")
    (repo / ".gitignore").write_text("docs/\n")
    config = {
        "services": {
            "db": {"image": "postgres:17-trixie"},
            "nginx": {
                "build": {"context": str(repo / "nginx"), "additional_contexts": {"web": "x"}}
            },
        }
    }
    assert project_base_images(repo, config) == [
        "nginx:1.30-trixie",
        "postgres:17-trixie",
        "python:3.13-slim-trixie",
    ]


def test_a_bumped_tag_is_what_gets_derived(tmp_path):
    repo = git_repo(tmp_path, {"Dockerfile": "FROM python:3.14-slim-trixie\n"})
    assert project_base_images(repo, {}) == ["python:3.14-slim-trixie"]


def test_tracked_but_deleted_dockerfile_is_an_error(tmp_path):
    repo = git_repo(tmp_path, {"Dockerfile": "FROM python:3.13-slim-trixie\n"})
    (repo / "Dockerfile").unlink()
    with pytest.raises(BaseImageError, match="tracked but missing"):
        project_base_images(repo, {})


def test_the_base_tests_run_directly_follows_the_dockerfile(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM python:3.14-slim-trixie AS builder\nFROM builder\n")
    assert dockerfile_base(tmp_path, "Dockerfile") == "python:3.14-slim-trixie"
    (tmp_path / "Two").write_text("FROM python:3.14-slim-trixie\nFROM debian:trixie-slim\n")
    with pytest.raises(BaseImageError, match="expected one base image"):
        dockerfile_base(tmp_path, "Two")


def test_images_of_services_an_override_file_adds(tmp_path):
    """compose.<name>.yaml beside compose.yaml may add services (compose.worker.yaml's redis);
    a variable it requires gets a placeholder, as ops would set one."""
    repo = git_repo(
        tmp_path,
        {
            "compose.yaml": "services:\n  db:\n    image: postgres:17-trixie\n",
            "compose.extra.yaml": (
                "services:\n  queue:\n    image: redis:8-trixie\n"
                "    volumes: ['${NEEDED_DIR:?set it}:/x']\n"
            ),
            "tests/compose.yaml": "services:\n  other:\n    image: not-an-override:1\n",
        },
    )
    assert project_base_images(repo) == ["postgres:17-trixie", "redis:8-trixie"]
