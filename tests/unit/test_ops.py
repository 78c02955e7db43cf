"""The ops CLI's pieces that need no engine: .env editing, versions, history, its minimums.
The verbs themselves run against the real engine in tests/ops."""

import json
import re
import subprocess

import pytest

from tests.harness import REPO
from tests.harness.base_images import dockerfile_base
from tools.ops import project as ops_project
from tools.ops.console import OpsError
from tools.ops.history import History
from tools.ops.images import base_image, check_version, digest_of


def test_env_values_are_set_in_place_and_everything_else_is_kept(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# a comment\nDJANGO_ALLOWED_HOSTS=cats.example.com\nAPP_VERSION='1.0'\n"
                   "# APP_VERSION=commented\n")  # fmt: skip
    env.chmod(0o600)
    ops_project.write_env_values(env, {"APP_VERSION": "1.1", "NGINX_VERSION": "proxy-abc"})
    assert env.read_text() == (
        "# a comment\nDJANGO_ALLOWED_HOSTS=cats.example.com\nAPP_VERSION=1.1\n"
        "# APP_VERSION=commented\nNGINX_VERSION=proxy-abc\n"
    )
    assert env.stat().st_mode & 0o777 == 0o600
    assert ops_project.read_env_file(env)["APP_VERSION"] == "1.1"
    assert [p.name for p in tmp_path.iterdir()] == [".env"]


def test_env_file_read_as_compose_reads_it(tmp_path):
    env = tmp_path / ".env"
    env.write_text("A=1\n export B = \"two words\"\n#C=3\nD='x'\nE=\n")
    assert ops_project.read_env_file(env) == {"A": "1", "B": "two words", "D": "x", "E": ""}


@pytest.mark.parametrize("version", ["1.4.2", "v2.0.0-3-gdeadbee", "b", "2026-12-01.1"])
def test_versions_that_are_tags_and_dns_labels(version):
    assert check_version(version) == version


@pytest.mark.parametrize("version", ["", "V1", "-x", "1.0_rc", "a/b", "x" * 64, "1 0"])
def test_versions_that_are_refused_with_the_rule(version):
    with pytest.raises(OpsError, match="lowercase letters, digits, dots and dashes"):
        check_version(version)


def test_the_proxy_version_follows_nginx_files_and_base_but_not_the_release_templates(tmp_path):
    nginx = tmp_path / "nginx"
    (nginx / "templates").mkdir(parents=True)
    (nginx / "Dockerfile").write_text("FROM nginx:1.30-trixie\n")
    (nginx / "templates" / "site.conf.template").write_text("a")
    before = digest_of(tmp_path, "base-1")
    (nginx / "templates" / "site.conf.template").write_text("b")
    assert digest_of(tmp_path, "base-1") == before
    assert digest_of(tmp_path, "base-2") != before
    (nginx / "Dockerfile").write_text("FROM nginx:1.31-trixie\n")
    assert digest_of(tmp_path, "base-1") != before
    assert re.fullmatch(r"proxy-[0-9a-f]{12}", before)
    assert check_version(digest_of(REPO, "base-1"))


def test_the_base_images_are_read_from_the_dockerfiles():
    assert base_image(REPO, "web") == dockerfile_base(REPO, "Dockerfile")
    assert base_image(REPO, "nginx") == dockerfile_base(
        REPO, "nginx/Dockerfile", named_contexts=frozenset({"web"})
    )


def test_history_gives_the_previous_version_and_the_ones_to_keep(tmp_path):
    history = History(tmp_path)
    for app in ("a", "b", "a", "c", "d"):
        history.append(app, f"proxy-{app}")
    assert history.previous("d").app == "c"
    assert [e.app for e in history.kept(3)] == ["d", "c", "a"]
    assert history.latest_of("b").proxy == "proxy-b"
    assert History(tmp_path / "none").previous("x") is None


def test_the_tests_need_the_versions_ops_needs():
    engine_env = (REPO / "tests/harness/engine.env").read_text()
    minimum = dict(re.findall(r"^TESTS_MIN_(ENGINE|COMPOSE)=([\d.]+)$", engine_env, re.M))
    assert ops_project.parse_version(minimum["ENGINE"]) == ops_project.MIN_ENGINE
    assert ops_project.parse_version(minimum["COMPOSE"]) == ops_project.MIN_COMPOSE


def test_a_bad_argument_is_one_line_of_usage(tmp_path):
    result = subprocess.run(
        [str(REPO / "ops"), "deploy", "--bogus"], cwd=tmp_path, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr
    assert "Traceback" not in result.stderr


def test_outside_a_project_the_verb_says_where_to_run(tmp_path):
    result = subprocess.run(
        [str(REPO / "ops"), "backups"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"backups: failed: no compose.yaml in {tmp_path}; run ./ops from the project's folder"
    )


def test_status_that_cannot_be_read_is_unknown_for_monitoring(tmp_path):
    """The monitoring-plugin convention: 3 is unknown, 1 would read as degraded."""
    plain = subprocess.run(
        [str(REPO / "ops"), "status"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert plain.returncode == 3
    assert plain.stderr.startswith("status: failed: no compose.yaml")
    as_json = subprocess.run(
        [str(REPO / "ops"), "status", "--json"], cwd=tmp_path, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout)["status"] == "unknown"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--host", "cats.example.org"], "choose one way visitors reach the site"),
        (["--host", "https://cats.example.org/", "--plain-http"], "is not a host name"),
        (["--host", "cats.example.org", "--balancer", "10.0.1.0/33"],
         "is not an address or network like 10.0.1.0/24"),
        (["--host", "cats.example.org", "--tls-dir", "nowhere"], "no tls.crt or tls.key there"),
        ([], "say how the site is reached: ./ops init --host NAME"),
    ],
)  # fmt: skip
def test_init_refuses_settings_it_cannot_write_in_one_line(tmp_path, args, reason):
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    result = subprocess.run(
        [str(REPO / "ops"), "init", *args], cwd=tmp_path, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("init: failed at check: ")
    assert reason in line
    assert not (tmp_path / ".env").exists()


def test_the_compose_files_are_compose_s_own_choice(tmp_path, monkeypatch):
    """COMPOSE_FILE from .env (split on COMPOSE_PATH_SEPARATOR, relative to the project), else
    compose.yaml with compose.override.yaml when there is one, as compose reads them."""
    monkeypatch.delenv("COMPOSE_FILE", raising=False)
    monkeypatch.delenv("COMPOSE_PATH_SEPARATOR", raising=False)
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    project = ops_project.Project(tmp_path)
    assert project.compose_files() == [str(tmp_path / "compose.yaml")]
    (tmp_path / "compose.override.yaml").write_text("services: {}\n")
    assert project.compose_files() == [
        str(tmp_path / "compose.yaml"),
        str(tmp_path / "compose.override.yaml"),
    ]
    (tmp_path / ".env").write_text("COMPOSE_FILE=compose.yaml;compose.tls.yaml\n"
                                   "COMPOSE_PATH_SEPARATOR=;\n")  # fmt: skip
    assert project.compose_files() == [
        str(tmp_path / "compose.yaml"),
        str(tmp_path / "compose.tls.yaml"),
    ]
