"""Make every base image the project references available on the local engine.

For each name: a real image already present is used as is; else, if a registry answers, the
real image is pulled; else the stand-in is built from its recipe (or reused when an image with
that recipe's digest label is already tagged with the name). Stand-ins are built in two steps:
mmdebstrap makes a minbase root filesystem with the recipe's packages (cached as
`standin-rootfs/<repository>:<digest>`), then the recipe's Dockerfile shapes it. The installed
version is checked against the tag before the official name is applied.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.harness.debian_sources import debian_mirrors
from tests.harness.standins import (
    HOST_CA_BUNDLE,
    RECIPE_LABEL,
    Recipe,
    StandinError,
    load_recipes,
    recipe_for,
    version_matches,
)

ROOTFS_REPOSITORY = "standin-rootfs"
REGISTRY_PROBE_TIMEOUT_S = 15
PULL_TIMEOUT_S = 600
BUILD_TIMEOUT_S = 900
LOG_DIR = Path("tests/artifacts/standins")
INSTALL_HOST_PACKAGES = Path(__file__).resolve().parents[1] / "install-host-packages"


def _docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=check
    )


def image_label(name: str) -> tuple[bool, str | None]:
    """(present, recipe digest label or None) for a local image."""
    result = _docker(
        "image",
        "inspect",
        "--format",
        f'{{{{index .Config.Labels "{RECIPE_LABEL}"}}}}',
        name,
        check=False,
    )
    if result.returncode != 0:
        return False, None
    return True, result.stdout.strip() or None


class Registry:
    """Whether a registry answers; asked once per run, since here it usually does not."""

    def __init__(self) -> None:
        self.reachable: bool | None = None

    def pull(self, name: str) -> bool:
        if self.reachable is False:
            return False
        try:
            probe = _docker(
                "manifest", "inspect", name, timeout=REGISTRY_PROBE_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            probe = None
        if probe is None or probe.returncode != 0:
            self.reachable = False
            return False
        self.reachable = True
        _docker("pull", "--quiet", name, timeout=PULL_TIMEOUT_S)
        return True


class StandinBuilder:
    def __init__(self, log_dir: Path = LOG_DIR) -> None:
        self.log_dir = log_dir
        self.mirrors = debian_mirrors()
        self._tools = threading.Lock()

    def require_mmdebstrap(self, name: str) -> None:
        """mmdebstrap, installed when missing where that is possible (root on Debian)."""
        with self._tools:
            if shutil.which("mmdebstrap"):
                return
            if os.geteuid() != 0 or not shutil.which("apt-get"):
                raise StandinError(
                    f"{name}: no registry answers, and building its stand-in needs mmdebstrap "
                    "(as root on Debian: apt-get install mmdebstrap), or a registry to pull from"
                )
            print("  installing mmdebstrap: no registry answers, so stand-ins are built from "
                  "Debian packages", flush=True)  # fmt: skip
            subprocess.run([str(INSTALL_HOST_PACKAGES), "mmdebstrap"], check=True)

    def _sources(self, recipe: Recipe) -> list[str]:
        keyring = f"[signed-by={self.mirrors.keyring}] " if self.mirrors.keyring else ""
        lines = [f"deb {keyring}{self.mirrors.archive} {recipe.suite} main"]
        lines.append(f"deb {keyring}{self.mirrors.archive} {recipe.suite}-updates main")
        if self.mirrors.security:
            lines.append(f"deb {keyring}{self.mirrors.security} {recipe.suite}-security main")
        lines += [
            f"deb {keyring}{self.mirrors.archive} {suite} main" for suite in recipe.extra_suites
        ]
        return lines

    def _image_sources(self, recipe: Recipe) -> str:
        """The image's own apt sources: its suite only, like the official Debian images."""
        stanzas = [
            f"Types: deb\nURIs: {self.mirrors.archive}\n"
            f"Suites: {recipe.suite} {recipe.suite}-updates\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        ]
        if self.mirrors.security:
            stanzas.append(
                f"Types: deb\nURIs: {self.mirrors.security}\nSuites: {recipe.suite}-security\n"
                "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            )
        return "\n".join(stanzas)

    def _mmdebstrap_argv(self, recipe: Recipe, sources_file: Path, output: Path) -> list[str]:
        return [
            "mmdebstrap",
            "--variant=minbase",
            f"--include={','.join(recipe.packages)}",
            f'--aptopt=APT::Default-Release "{recipe.suite}"',
            # The machine's mirror may be a frozen snapshot: signatures are still checked.
            '--aptopt=Acquire::Check-Valid-Until "false"',
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            '--customize-hook=rm -f "$1"/etc/apt/apt.conf.d/99mmdebstrap "$1"/etc/apt/sources.list'
            ' "$1"/etc/apt/trusted.gpg.d/*',
            f"--customize-hook=copy-in {sources_file} /etc/apt/sources.list.d/",
            recipe.suite,
            str(output),
            *self._sources(recipe),
        ]

    def _run_logged(self, argv: list[str], log: Path, what: str, timeout: float) -> None:
        with log.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            result = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        if result.returncode != 0:
            tail = "\n".join(log.read_text().splitlines()[-15:])
            raise StandinError(f"{what} failed (exit {result.returncode}); log: {log}\n{tail}")

    def build(self, name: str, recipe: Recipe, wanted_version: str) -> str:
        """Build the stand-in for `name` unless one with the same recipe digest is tagged."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # A repository may be a path (prom/prometheus): one log file per recipe all the same.
        log = (self.log_dir / f"{recipe.repository.replace('/', '_')}.log").resolve()
        with tempfile.TemporaryDirectory(prefix="standin-", dir="/var/tmp") as tmp:
            work = Path(tmp)
            sources_file = work / "debian.sources"
            sources_file.write_text(self._image_sources(recipe))
            argv = self._mmdebstrap_argv(recipe, sources_file, work / "rootfs.tar")
            rootfs_digest = hashlib.sha256(
                ("\0".join(argv).replace(tmp, "") + sources_file.read_text()).encode()
            ).hexdigest()
            digest = recipe.digest(rootfs_digest)
            present, label = image_label(name)
            if present and label == digest:
                return f"stand-in up to date (recipe {digest[:12]})"

            log.write_text("")
            started = time.monotonic()
            rootfs = f"{ROOTFS_REPOSITORY}/{recipe.repository}:{rootfs_digest[:16]}"
            if not image_label(rootfs)[0]:
                self.require_mmdebstrap(name)
                self._run_logged(argv, log, f"{name}: mmdebstrap", BUILD_TIMEOUT_S)
                self._run_logged(
                    ["docker", "import", str(work / "rootfs.tar"), rootfs],
                    log,
                    f"{name}: docker import",
                    BUILD_TIMEOUT_S,
                )
            context = work / "context"
            shutil.copytree(recipe.directory, context)
            (context / "recipe.toml").unlink()
            if recipe.host_ca_bundle:
                shutil.copyfile(HOST_CA_BUNDLE, context / "host-ca-bundle.crt")
            candidate = f"standin-candidate/{recipe.repository}:{digest[:16]}"
            self._run_logged(
                [
                    "docker",
                    "build",
                    "--build-arg",
                    f"ROOTFS={rootfs}",
                    "--label",
                    f"{RECIPE_LABEL}={digest}",
                    "--tag",
                    candidate,
                    str(context),
                ],
                log,
                f"{name}: docker build",
                BUILD_TIMEOUT_S,
            )
            try:
                self._check_version(name, recipe, candidate, wanted_version)
                _docker("tag", candidate, name)
            finally:
                _docker("image", "rm", candidate, check=False)
            self._forget_old_rootfs(recipe, keep=rootfs)
            return f"stand-in built in {time.monotonic() - started:.0f}s (recipe {digest[:12]})"

    def _check_version(self, name: str, recipe: Recipe, image: str, wanted: str) -> None:
        command, *arguments = recipe.version_command
        result = _docker("run", "--rm", "--entrypoint", command, image, *arguments, check=False)
        output = result.stdout + result.stderr
        installed = recipe.installed_version(output)
        if installed is None:
            command_line = " ".join(recipe.version_command)
            raise StandinError(
                f"{name}: no version in the output of {command_line}: {output.strip()!r}"
            )
        if not version_matches(wanted, installed):
            raise StandinError(
                f"{name}: the stand-in recipe ({recipe.directory}) installs {recipe.repository} "
                f"{installed}, not {wanted}; update the recipe to provide {wanted} "
                "(or keep the tag the recipe provides)"
            )

    def _forget_old_rootfs(self, recipe: Recipe, keep: str) -> None:
        listed = _docker(
            "image",
            "ls",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            f"{ROOTFS_REPOSITORY}/{recipe.repository}",
        )
        stale = [ref for ref in listed.stdout.split() if ref != keep]
        if stale:
            _docker("image", "rm", *stale, check=False)


class Provider:
    """Provides names (safe to call from several threads); the registry probe and the
    builder are shared."""

    def __init__(self) -> None:
        self.recipes = load_recipes()
        self.registry = Registry()

    @functools.cached_property
    def builder(self) -> StandinBuilder:
        return StandinBuilder()

    def provide(self, name: str) -> str:
        present, label = image_label(name)
        if present and label is None:
            return "real image present"
        if self.registry.pull(name):
            return "pulled from the registry"
        recipe, wanted_version = recipe_for(name, self.recipes)
        return self.builder.build(name, recipe, wanted_version)
