"""Small helpers for tests that drive the Docker engine through its CLI.

Everything a test starts carries this run's id (TESTS_RUN_ID, set by tests/run): plain
containers through the RUN_LABEL label, compose resources through their project name prefix.
The end-of-run check (tests.harness.leftovers) relies on it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

RUN_LABEL = "io.catcollector.test-run"
DEFAULT_TIMEOUT_S = 120
BUILD_TIMEOUT_S = 900
# Passed to docker and compose; nothing else from the caller's shell leaks into a test.
PASSTHROUGH_ENV = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "TMPDIR")


class DockerError(RuntimeError):
    """A docker command failed; the message holds the command and its stderr."""


def run_id() -> str:
    """This run's id: TESTS_RUN_ID from tests/run, else one made up once per process."""
    if "TESTS_RUN_ID" not in os.environ:
        os.environ["TESTS_RUN_ID"] = f"tr{secrets.token_hex(4)}"
    return os.environ["TESTS_RUN_ID"]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSTHROUGH_ENV if name in os.environ}
    env.update(extra or {})
    return env


def docker(
    *args: str,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `docker ARGS`, capturing text output; raise DockerError on failure if check."""
    result = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        env=clean_env(),
        check=False,
    )
    if check and result.returncode != 0:
        raise DockerError(
            f"docker {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
        )
    return result


def engine_problem() -> str | None:
    """None when an engine answers, else why not (one line)."""
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    except FileNotFoundError:
        return "no docker CLI on PATH"
    except subprocess.TimeoutExpired:
        return "docker info did not answer within 30s"
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return lines[-1] if lines else f"docker info exited {result.returncode}"
    return None


def build_image(
    context: Path | str,
    tag: str,
    *,
    dockerfile: Path | str | None = None,
    target: str | None = None,
    build_args: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = BUILD_TIMEOUT_S,
) -> str:
    """Build `context` into `tag` and return the image id.

    Use a stable tag per image under test (not one per run): rebuilding moves the tag and the
    build cache keeps the second build fast. On failure the end of the build log is raised.
    """
    args = ["build", "--tag", tag]
    if dockerfile is not None:
        args += ["--file", str(dockerfile)]
    if target is not None:
        args += ["--target", target]
    for name, value in (build_args or {}).items():
        args += ["--build-arg", f"{name}={value}"]
    args += [*extra_args, str(context)]
    result = docker(*args, check=False, timeout=timeout)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-30:])
        raise DockerError(f"docker build of {tag} exited {result.returncode}:\n{tail}")
    return docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


def image_config(image: str) -> dict:
    """The image's Config block (User, Env, Cmd, Entrypoint, StopSignal, ExposedPorts...)."""
    return json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image).stdout)
