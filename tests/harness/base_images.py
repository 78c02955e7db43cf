"""Which base images the project's own files pull, so the harness provisions exactly those.

Sources: every `FROM` (and `COPY --from=`) in tracked Dockerfiles, with `ARG` defaults (or the
compose service's build args) resolved and stage names, named build contexts and `scratch`
skipped; plus the `image:` of every compose service that has no `build:`, in compose.yaml and
with each override file beside it (compose.<name>.yaml). Bumping a tag in any
of those files therefore changes what the tests run against.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.tracked import tracked_dockerfiles, tracked_files

COMPOSE_FILE = "compose.yaml"
# Example values for every variable compose.yaml interpolates: enough for `config` to resolve.
COMPOSE_ENV_EXAMPLE = ".env.example"
# Dockerfiles whose base the harness passes in rather than pulls: the stand-ins' (a root
# filesystem it builds) and the test tools' (the test balancer, the SFTP server: the nginx
# image's base, already listed).
HARNESS_BUILT = ("tests/harness/standins/", "tests/harness/balancer/", "tests/harness/sftp/")


class BaseImageError(RuntimeError):
    """A reference the harness cannot resolve; the message names the file."""


@dataclass
class Dockerfile:
    path: Path
    build_args: dict[str, str] = field(default_factory=dict)
    named_contexts: frozenset[str] = frozenset()
    text: str | None = None  # inline Dockerfiles have no file to read


_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_]\w*)(?P<op>:?[-+])?(?P<word>[^}]*)\}|(?P<bare>[A-Za-z_]\w*))"
)


_HEREDOC = re.compile(r"<<-?([\"']?)(?P<word>[A-Za-z_]\w*)\1")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs: continuations joined, comments and heredoc bodies dropped."""
    lines = text.splitlines()
    escape = "\\"
    for line in lines:
        directive = re.match(r"#\s*(\w+)\s*=\s*(\S+)", line)
        if not directive:
            break
        if directive.group(1).lower() == "escape":
            escape = directive.group(2)
    instructions = []
    current = ""
    heredoc_end = None
    for line in lines:
        stripped = line.strip()
        if heredoc_end is not None:
            if stripped == heredoc_end:
                heredoc_end = None
            continue
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith(escape):
            current += stripped[: -len(escape)] + " "
            continue
        current += stripped
        keyword, _, arguments = current.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        current = ""
        heredoc = _HEREDOC.search(arguments)
        if heredoc:
            heredoc_end = heredoc.group("word")
    if current.strip():
        keyword, _, arguments = current.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def _substitute(value: str, variables: dict[str, str | None], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        current = variables.get(name)
        op, word = match.group("op"), match.group("word")
        if op in (":-", "-"):
            empty = current is None or (op == ":-" and current == "")
            return word if empty else str(current)
        if op in (":+", "+"):
            present = current is not None and (op == "+" or current != "")
            return word if present else ""
        if word:
            raise BaseImageError(f"{where}: unsupported variable expansion {match.group(0)!r}")
        if current is None:
            raise BaseImageError(f"{where}: ${name} has no default and no build arg sets it")
        return current

    return _VARIABLE.sub(replace, value)


def _strip_flags(words: list[str]) -> list[str]:
    return [word for word in words if not word.startswith("--")]


def dockerfile_base_images(dockerfile: Dockerfile) -> list[str]:
    """Images a Dockerfile pulls, in order of appearance."""
    text = dockerfile.path.read_text() if dockerfile.text is None else dockerfile.text
    variables: dict[str, str | None] = {}
    stages: set[str] = set()
    images: list[str] = []
    seen_from = False

    def add(reference: str) -> None:
        if reference.lower() == "scratch" or reference in stages:
            return
        if reference in dockerfile.named_contexts or reference.isdigit():
            return
        if reference not in images:
            images.append(reference)

    for number, (keyword, arguments) in enumerate(_instructions(text), start=1):
        where = f"{dockerfile.path} (instruction {number})"
        if keyword == "ARG" and not seen_from:
            for declaration in arguments.split():
                name, has_default, default = declaration.partition("=")
                if name in dockerfile.build_args:
                    variables[name] = dockerfile.build_args[name]
                else:
                    variables[name] = default.strip("\"'") if has_default else None
        elif keyword == "FROM":
            seen_from = True
            words = _strip_flags(arguments.split())
            if not words:
                raise BaseImageError(f"{where}: FROM without an image")
            add(_substitute(words[0], variables, where))
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2])
        elif keyword == "COPY":
            for word in arguments.split():
                if word.startswith("--from="):
                    add(_substitute(word.removeprefix("--from="), variables, where))
    return images


# A variable an override file requires (`${NAME:?...}`): a placeholder lets `config` resolve it.
_REQUIRED_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*):?\?")


def compose_overrides(repo: Path) -> list[str]:
    """The override files ops add to compose.yaml (compose.<name>.yaml beside it)."""
    return [
        name
        for name in tracked_files(repo)
        if re.fullmatch(r"compose\.[\w-]+\.ya?ml", name) and name != COMPOSE_FILE
    ]


def compose_config(repo: Path, *override_files: str) -> dict:
    """`docker compose config` of compose.yaml (plus `override_files`) as JSON, with every
    profile enabled, example values and a placeholder for each variable an override requires."""
    command = ["docker", "compose", "--profile", "*", "-f", COMPOSE_FILE]
    required = {}
    for override in override_files:
        command += ["-f", override]
        for name in _REQUIRED_VARIABLE.findall((repo / override).read_text()):
            required[name] = "/placeholder"
    if COMPOSE_ENV_EXAMPLE in tracked_files(repo):
        command += ["--env-file", COMPOSE_ENV_EXAMPLE]
    command += ["config", "--format", "json"]
    result = subprocess.run(
        command,
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **required},
    )
    if result.returncode != 0:
        files = " + ".join((COMPOSE_FILE, *override_files))
        raise BaseImageError(f"{files}: docker compose config failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def compose_built_images(config: dict) -> set[str]:
    """The images compose builds (a service may run the image a sibling builds, under compose's
    name for it)."""
    services = config.get("services", {})
    project = config.get("name", "")
    return {s.get("image") or f"{project}-{name}" for name, s in services.items() if "build" in s}


def compose_base_images(config: dict, built_elsewhere: frozenset[str] = frozenset()) -> list[str]:
    """Images of services that compose pulls rather than builds: not those a service builds,
    here or in `built_elsewhere` (compose.yaml's, when an override drops the service that
    builds one: compose.external-db.yaml's tools still run the db image)."""
    built = compose_built_images(config) | built_elsewhere
    services = config.get("services", {}).values()
    return sorted({s["image"] for s in services
                   if "build" not in s and s.get("image") and s["image"] not in built})  # fmt: skip


def compose_dockerfiles(config: dict, repo: Path) -> list[Dockerfile]:
    """The Dockerfiles compose builds, with the build args and named contexts it passes."""
    dockerfiles = []
    for name, service in sorted(config.get("services", {}).items()):
        build = service.get("build")
        if not build:
            continue
        args = {k: str(v) for k, v in (build.get("args") or {}).items() if v is not None}
        contexts = frozenset(build.get("additional_contexts") or {})
        if "dockerfile_inline" in build:
            path = Path(f"{COMPOSE_FILE} (services.{name}.build.dockerfile_inline)")
            dockerfiles.append(Dockerfile(path, args, contexts, build["dockerfile_inline"]))
            continue
        context = repo / build.get("context", ".")
        path = (context / build.get("dockerfile", "Dockerfile")).resolve()
        dockerfiles.append(Dockerfile(path, args, contexts))
    return dockerfiles


def project_base_images(repo: Path, config: dict | None = None) -> list[str]:
    """Every base image the tracked Dockerfiles and compose.yaml reference, sorted.

    `config` is compose.yaml's resolved configuration; by default `docker compose config` is
    asked for it when compose.yaml is tracked.
    """
    images = set()
    if config is None and COMPOSE_FILE in tracked_files(repo):
        config = compose_config(repo)
        built = frozenset(compose_built_images(config))
        # An override may bring services of its own (compose.worker.yaml's redis).
        for override in compose_overrides(repo):
            images.update(compose_base_images(compose_config(repo, override), built))
    config = config or {}
    images.update(compose_base_images(config))
    dockerfiles = compose_dockerfiles(config, repo)
    built_by_compose = {d.path for d in dockerfiles}
    for relative in tracked_dockerfiles(repo):
        if relative.startswith(HARNESS_BUILT):
            continue
        path = (repo / relative).resolve()
        if not path.is_file():
            raise BaseImageError(f"{relative} is tracked but missing from the work tree")
        if path not in built_by_compose:
            dockerfiles.append(Dockerfile(path))
    for dockerfile in dockerfiles:
        images.update(dockerfile_base_images(dockerfile))
    return sorted(images)


def dockerfile_base(repo: Path, relative: str, named_contexts: frozenset[str] = frozenset()) -> str:
    """The one base image a project Dockerfile starts from, for tests that run that image
    directly: read from the file, so a bumped tag is never tested against the old one."""
    images = dockerfile_base_images(Dockerfile(repo / relative, named_contexts=named_contexts))
    if len(images) != 1:
        raise BaseImageError(f"{relative}: expected one base image, found {images}")
    return images[0]


def service_image(repo: Path, service: str) -> str:
    """The image compose.yaml runs for a service."""
    return compose_config(repo)["services"][service]["image"]


def postgres_image(repo: Path) -> str:
    """The official postgres image the db image (postgres/Dockerfile) starts from: a plain
    PostgreSQL server, for tests that need one beside the stack, and swarm's database."""
    return dockerfile_base(repo, "postgres/Dockerfile")
