"""The repository's files by kind, for the linters and the base-image derivation.

Lists come from `git ls-files` (tracked files plus new ones git does not ignore), never from
what happens to exist on disk, so a check meant for a file cannot silently pass once that file
is part of the project (a tracked but deleted file is still listed, and its check then fails).

CLI (NUL-separated paths for xargs -0):
  python -m tests.harness.tracked dockerfiles|shell|compose|kustomizations
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SHELL_SUFFIXES = (".sh", ".bash", ".envsh")
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_COMPOSE_SERVICES = re.compile(r"^services:\s*(?:#.*)?$", re.MULTILINE)
_SHELL_SHEBANG = re.compile(rb"^#!\s*(?:/usr)?/bin/(?:env\s+(?:-\S+\s+)*)?(?:ba|da|k)?sh\b")


def tracked_files(repo: Path) -> list[str]:
    result = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    )
    return sorted({name for name in result.stdout.decode().split("\0") if name})


def is_dockerfile(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return (
        base == "Dockerfile"
        or base.startswith("Dockerfile.")
        or base.lower().endswith(".dockerfile")
    )


def is_shell_script(path: Path) -> bool:
    if path.suffix in SHELL_SUFFIXES:
        return True
    try:
        with path.open("rb") as file:
            first_line = file.readline(200)
    except (FileNotFoundError, IsADirectoryError):
        return False
    return bool(_SHELL_SHEBANG.match(first_line))


def is_compose_file(path: Path) -> bool:
    """A YAML file with a top-level `services:` key, whatever its name."""
    if path.suffix not in (".yaml", ".yml"):
        return False
    try:
        return bool(_COMPOSE_SERVICES.search(path.read_text(errors="replace")))
    except (FileNotFoundError, IsADirectoryError):
        return False


def tracked_dockerfiles(repo: Path) -> list[str]:
    return [name for name in tracked_files(repo) if is_dockerfile(name)]


def tracked_shell_scripts(repo: Path) -> list[str]:
    return [name for name in tracked_files(repo) if is_shell_script(repo / name)]


def tracked_compose_files(repo: Path) -> list[str]:
    return [name for name in tracked_files(repo) if is_compose_file(repo / name)]


def tracked_kustomizations(repo: Path) -> list[str]:
    """The folders kustomize builds: those holding a kustomization file, by any of its names."""
    return sorted(
        {
            str(Path(name).parent)
            for name in tracked_files(repo)
            if Path(name).name in KUSTOMIZATION_NAMES
        }
    )


def main(argv: list[str]) -> int:
    kinds = {
        "dockerfiles": tracked_dockerfiles,
        "shell": tracked_shell_scripts,
        "compose": tracked_compose_files,
        "kustomizations": tracked_kustomizations,
    }
    if len(argv) != 1 or argv[0] not in kinds:
        print(f"usage: python -m tests.harness.tracked {'|'.join(kinds)}", file=sys.stderr)
        return 2
    names = kinds[argv[0]](Path.cwd())
    sys.stdout.write("".join(f"{name}\0" for name in names))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
