"""Which tracked files the linters see."""

import subprocess
from pathlib import Path

from tests.harness.tracked import (
    is_dockerfile,
    tracked_compose_files,
    tracked_dockerfiles,
    tracked_kustomizations,
    tracked_shell_scripts,
)


def repository(root: Path, files: dict[str, str]) -> None:
    """`files` (name: text) written under `root`, a new git repository."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(root)], check=True)


def test_dockerfile_names():
    assert is_dockerfile("Dockerfile")
    assert is_dockerfile("nginx/Dockerfile")
    assert is_dockerfile("Dockerfile.dev")
    assert is_dockerfile("tests/web.Dockerfile")
    assert not is_dockerfile("docs/dockerfile.md")
    assert not is_dockerfile("Dockerfiles/README")


def test_shell_scripts_by_extension_and_by_shebang_not_ignored_ones(tmp_path: Path):
    files = {
        "scripts/entrypoint": "#!/usr/bin/env bash\necho\n",
        "scripts/wait": "#!/bin/sh\necho\n",
        "scripts/probe": "#!/usr/bin/env python3\nprint()\n",
        "nginx/15-resolvers.envsh": "export X=1\n",
        "lib.sh": "echo\n",
        "README.md": "a line mentioning #!/bin/sh\n",
        "Dockerfile": "FROM python:3.13-slim-trixie\n",
    }
    repository(tmp_path, files)
    (tmp_path / "new-not-added-yet.sh").write_text("echo\n")
    (tmp_path / "ignored.sh").write_text("echo\n")
    (tmp_path / ".gitignore").write_text("ignored.sh\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", *files], check=True)
    assert tracked_shell_scripts(tmp_path) == [
        "lib.sh",
        "new-not-added-yet.sh",
        "nginx/15-resolvers.envsh",
        "scripts/entrypoint",
        "scripts/wait",
    ]
    assert tracked_dockerfiles(tmp_path) == ["Dockerfile"]


def test_compose_files_by_their_top_level_services_key(tmp_path: Path):
    files = {
        "compose.yaml": "name: x\nservices:\n  web:\n    image: a\n",
        "nginx/compose.tls.yaml": "# an override\nservices:  # comment\n  nginx: {}\n",
        "tests/fixtures/client.yml": "services:\n  db: {}\n",
        ".github/workflows/ci.yaml": "jobs:\n  test:\n    services:\n      db: {}\n",
        "notes.md": "services:\n",
    }
    repository(tmp_path, files)
    assert tracked_compose_files(tmp_path) == [
        "compose.yaml",
        "nginx/compose.tls.yaml",
        "tests/fixtures/client.yml",
    ]


def test_kustomizations_are_the_folders_holding_a_kustomization_file(tmp_path: Path):
    files = {
        "kubernetes/base/kustomization.yaml": "resources: []\n",
        "kubernetes/base/web.yaml": "kind: Deployment\n",
        "kubernetes/overlays/single/kustomization.yml": "resources: []\n",
        "kubernetes/overlays/odd/Kustomization": "resources: []\n",
        "docs/kustomization.yaml.md": "not one\n",
    }
    repository(tmp_path, files)
    assert tracked_kustomizations(tmp_path) == [
        "kubernetes/base",
        "kubernetes/overlays/odd",
        "kubernetes/overlays/single",
    ]
