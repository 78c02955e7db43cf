"""Stand-in base images: recipes that build an official image's name from Debian packages.

Each folder here holds one recipe: `recipe.toml` (which names it serves, which Debian packages
make its root filesystem, how to read the installed version) and a Dockerfile with the files
that shape that root filesystem into the official image's contract. A name is only ever served
by a recipe whose installed version matches the name's tag, so bumping a tag in the project's
files can never silently test an older image.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tests.harness.base_images import project_base_images

RECIPES_DIR = Path(__file__).parent
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Image label holding the digest of the recipe a stand-in was built from.
RECIPE_LABEL = "io.catcollector.standin.recipe"


class StandinError(RuntimeError):
    """A name the harness cannot provide; the message says why and what to change."""


@dataclass(frozen=True)
class Recipe:
    directory: Path
    repository: str
    tag_pattern: re.Pattern[str]
    fallback: str
    suite: str
    extra_suites: tuple[str, ...]
    packages: tuple[str, ...]
    version_command: tuple[str, ...]
    version_pattern: re.Pattern[str]
    host_ca_bundle: bool

    @classmethod
    def load(cls, directory: Path) -> Recipe:
        data = tomllib.loads((directory / "recipe.toml").read_text())
        return cls(
            directory=directory,
            repository=data["repository"],
            tag_pattern=re.compile(data["tag"]),
            fallback=data["fallback"],
            suite=data["suite"],
            extra_suites=tuple(data.get("extra_suites", ())),
            packages=tuple(data["packages"]),
            version_command=tuple(data["version_command"]),
            version_pattern=re.compile(data["version_pattern"], re.MULTILINE),
            host_ca_bundle=data.get("host_ca_bundle", False),
        )

    def files(self) -> list[Path]:
        return sorted(p for p in self.directory.rglob("*") if p.is_file())

    def digest(self, rootfs_digest: str) -> str:
        """Changes whenever anything that goes into the image changes."""
        sha = hashlib.sha256(rootfs_digest.encode())
        for path in self.files():
            executable = path.stat().st_mode & 0o111
            sha.update(f"{path.relative_to(self.directory)}:{executable:o}\n".encode())
            sha.update(path.read_bytes())
        if self.host_ca_bundle:
            sha.update(HOST_CA_BUNDLE.read_bytes())
        return sha.hexdigest()

    def installed_version(self, output: str) -> str | None:
        match = self.version_pattern.search(output)
        return match.group("version") if match else None


def load_recipes(directory: Path = RECIPES_DIR) -> dict[str, Recipe]:
    recipes = [Recipe.load(p.parent) for p in sorted(directory.glob("*/recipe.toml"))]
    return {recipe.repository: recipe for recipe in recipes}


def split_name(name: str) -> tuple[str, str]:
    """('python', '3.13-slim-trixie') from any spelling of an official image's name."""
    if "@" in name:
        raise StandinError(f"{name}: pinned by digest; a stand-in cannot match a digest")
    repository, _, tag = name.rpartition(":")
    if not repository or "/" in tag:
        repository, tag = name, "latest"
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        repository = repository.removeprefix(prefix)
    return repository.removeprefix("library/"), tag


def version_matches(wanted: str, installed: str) -> bool:
    """A tag's version (3.13, 17, 1.30.6) matches the installed one it is a prefix of."""
    return installed == wanted or installed.startswith(wanted + ".")


def recipe_for(name: str, recipes: dict[str, Recipe]) -> tuple[Recipe, str]:
    """The recipe serving `name` and the version its tag promises."""
    repository, tag = split_name(name)
    recipe = recipes.get(repository)
    if recipe is None:
        raise StandinError(
            f"{name}: no stand-in recipe for '{repository}' in {RECIPES_DIR} and no registry "
            f"to pull it from; add a recipe folder for it"
        )
    match = recipe.tag_pattern.fullmatch(tag)
    if not match:
        raise StandinError(
            f"{name}: the '{repository}' stand-in recipe ({recipe.directory}) only serves tags "
            f"matching {recipe.tag_pattern.pattern}; extend the recipe or use such a tag"
        )
    return recipe, match.group("version")


def promised_version(name: str) -> str:
    """The version a name's tag promises: 3.13 for python:3.13-slim-trixie."""
    return recipe_for(name, load_recipes())[1]


def images_to_provide(repo: Path, recipes: dict[str, Recipe] | None = None) -> list[str]:
    """The project's base images, plus each recipe's fallback name while the project's files
    reference no image of that repository yet (so every stand-in's contract stays tested)."""
    recipes = load_recipes() if recipes is None else recipes
    images = project_base_images(repo)
    referenced = {split_name(name)[0] for name in images}
    fallbacks = [r.fallback for r in recipes.values() if r.repository not in referenced]
    return sorted(set(images) | set(fallbacks))


def images_by_repository(repo: Path) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name in images_to_provide(repo):
        grouped.setdefault(split_name(name)[0], []).append(name)
    return grouped
