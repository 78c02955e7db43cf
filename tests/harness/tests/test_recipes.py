"""Which stand-in recipe serves which name, and when a name must be refused."""

from pathlib import Path

import pytest
import yaml

from tests.harness import REPO, standins
from tests.harness.base_images import compose_base_images, compose_overrides
from tests.harness.standins import (
    Recipe,
    StandinError,
    load_recipes,
    recipe_for,
    split_name,
    version_matches,
)

RECIPES = load_recipes()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("python:3.13-slim-trixie", ("python", "3.13-slim-trixie")),
        ("docker.io/library/postgres:17-trixie", ("postgres", "17-trixie")),
        ("nginx", ("nginx", "latest")),
        ("localhost:5000/nginx", ("localhost:5000/nginx", "latest")),
    ],
)
def test_split_name(name, expected):
    assert split_name(name) == expected


def test_the_pinned_names_are_served_with_the_version_their_tag_promises():
    assert recipe_for("python:3.13-slim-trixie", RECIPES)[1] == "3.13"
    assert recipe_for("postgres:17-trixie", RECIPES)[1] == "17"
    assert recipe_for("nginx:1.30-trixie", RECIPES)[1] == "1.30"
    assert recipe_for("redis:8-trixie", RECIPES)[1] == "8"
    assert recipe_for("prom/prometheus:v2.53.3", RECIPES)[1] == "2.53.3"
    assert recipe_for("prom/alertmanager:v0.28.1", RECIPES)[1] == "0.28.1"
    assert recipe_for("prom/node-exporter:v1.9.0", RECIPES)[1] == "1.9.0"
    assert recipe_for("prom/blackbox-exporter:v0.26.0", RECIPES)[1] == "0.26.0"
    assert recipe_for("nginx/nginx-prometheus-exporter:1.4.1", RECIPES)[1] == "1.4.1"
    name = "quay.io/prometheuscommunity/postgres-exporter:v0.17.1"
    assert recipe_for(name, RECIPES)[1] == "0.17.1"
    assert recipe_for("oliver006/redis_exporter:v1.69.0-alpine", RECIPES)[1] == "1.69.0"


def test_every_image_the_monitoring_set_names_has_a_recipe_serving_its_tag():
    """compose.monitoring.yaml's images are provided like compose.yaml's (the harness reads
    every override's services that build nothing), and a recipe serves each one's tag."""
    assert "compose.monitoring.yaml" in compose_overrides(REPO)
    services = yaml.safe_load((REPO / "compose.monitoring.yaml").read_text())["services"]
    images = sorted(s["image"] for s in services.values() if "image" in s)
    assert len(images) == 7
    assert compose_base_images({"services": services}) == images
    for image in images:
        recipe_for(image, RECIPES)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("valkey/valkey:8", "no stand-in recipe for 'valkey/valkey'"),
        ("redis:8-alpine", "only serves tags matching"),
        ("python:3.13-alpine", "only serves tags matching"),
        ("postgres:17-bookworm", "only serves tags matching"),
        ("nginx:latest", "only serves tags matching"),
        ("nginx@sha256:" + "0" * 64, "pinned by digest"),
        ("prom/prometheus:latest", "only serves tags matching"),
        ("prom/prometheus:2.53.3", "only serves tags matching"),
        ("oliver006/redis_exporter:v1.69.0", "only serves tags matching"),
        ("prometheuscommunity/postgres-exporter:v0.17.1", "no stand-in recipe"),
    ],
)
def test_names_without_a_recipe_are_refused_clearly(name, message):
    with pytest.raises(StandinError, match=message):
        recipe_for(name, RECIPES)


@pytest.mark.parametrize(
    ("wanted", "installed", "matches"),
    [
        ("3.13", "3.13.5", True),
        ("17", "17.11", True),
        ("1.30", "1.30.6", True),
        ("1.30.6", "1.30.6", True),
        ("3.14", "3.13.5", False),
        ("1.3", "1.30.6", False),
        ("18", "17.11", False),
    ],
)
def test_version_matches(wanted, installed, matches):
    assert version_matches(wanted, installed) is matches


def test_version_is_read_from_each_recipes_command_output():
    assert RECIPES["python"].installed_version("3.13.5\n") == "3.13.5"
    output = "postgres (PostgreSQL) 17.11 (Debian 17.11-0+deb13u1)\n"
    assert RECIPES["postgres"].installed_version(output) == "17.11"
    assert RECIPES["nginx"].installed_version("nginx version: nginx/1.30.6\n") == "1.30.6"
    output = "Redis server v=8.0.2 sha=00000000:1 malloc=jemalloc-5.3.0 bits=64 build=1\n"
    assert RECIPES["redis"].installed_version(output) == "8.0.2"
    # Debian trixie's, as each stand-in's version command prints it.
    outputs = {
        "prom/prometheus": "prometheus, version 2.53.3+ds1 (branch: debian/sid, revision: 2)\n",
        "prom/alertmanager": "alertmanager, version 0.28.1+ds (branch: debian/sid)\n",
        "prom/node-exporter": "node_exporter, version 1.9.0 (branch: debian/sid)\n",
        "prom/blackbox-exporter": "blackbox_exporter, version 0.26.0 (branch: debian/sid)\n",
        "nginx/nginx-prometheus-exporter": "nginx_exporter, version 1.4.1 (branch: debian/sid)\n",
        "quay.io/prometheuscommunity/postgres-exporter": "postgres_exporter, version 0.17.1 (x)\n",
        "oliver006/redis_exporter": 'time="2026-12-05T14:24:34Z" level=info msg="Redis Metrics '
        'Exporter 1.69.0-1    build date: 20250326-22:59:43    sha1: debian/sid"\n',
    }
    for repository, output in outputs.items():
        wanted = recipe_for(RECIPES[repository].fallback, RECIPES)[1]
        assert RECIPES[repository].installed_version(output) == wanted, repository


def test_digest_changes_with_any_recipe_file_and_with_the_rootfs(tmp_path: Path):
    recipe_dir = tmp_path / "nginx"
    recipe_dir.mkdir()
    source = RECIPES["nginx"].directory / "recipe.toml"
    (recipe_dir / "recipe.toml").write_text(source.read_text())
    (recipe_dir / "Dockerfile").write_text("FROM x\n")
    recipe = Recipe.load(recipe_dir)
    before = recipe.digest("rootfs-a")
    assert recipe.digest("rootfs-a") == before
    assert recipe.digest("rootfs-b") != before
    (recipe_dir / "Dockerfile").write_text("FROM y\n")
    assert recipe.digest("rootfs-a") != before


def test_fallback_names_only_for_repositories_the_project_does_not_reference(monkeypatch):
    monkeypatch.setattr(standins, "project_base_images", lambda repo: ["postgres:18-trixie"])
    assert standins.images_to_provide(Path()) == sorted(
        [
            "postgres:18-trixie",
            *(r.fallback for r in RECIPES.values() if r.repository != "postgres"),
        ]
    )
    assert "nginx:1.30-trixie" in standins.images_to_provide(Path())
