"""pytest plugin for the engine test layers (standins, image, stack, ops, swarm, faults).

tests/run loads it with `-p tests.harness.engine_plugin` (and `-p no:django`). It provides:

- `docker_engine` (session, autouse): an engine must answer. With CI set the test FAILS when
  none does; elsewhere it is skipped with the reason.
- `compose_project`: a factory of ComposeProject, one unique project name per call
  (`<run id>-<test>-<n>`); every project is taken down (`down --volumes --remove-orphans`) when
  the test ends, whatever the outcome, and its logs are attached to a failing test's report.
- `containers`: a Containers factory (plain `docker run`, labelled, removed afterwards, logs on
  failure the same way).
- `free_port`: a function returning a free TCP port on 127.0.0.1.
- `build_image`: tests.harness.docker.build_image.
- `run_id`: this run's id.

A test's measurements (tests.harness.measurements.record) are kept when it passes, dropped when
it fails.

At the end of the session nothing carrying the run id may remain (containers, networks,
volumes): anything found is listed, removed, and fails the session.

Example (a stack test; variables reach compose through env files, as ops set them):

    def test_healthz_through_nginx(compose_project, free_port):
        port = free_port()
        project = compose_project(
            "compose.yaml",
            env_files=[".env.example"],
            env={"HTTP_BIND": "127.0.0.1", "HTTP_PORT": str(port)},
        )
        project.up(build=True, timeout=300)  # --wait: every healthcheck passed
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.harness import REPO, ci, leftovers, measurements
from tests.harness import docker as docker_helpers
from tests.harness.compose import ComposeProject
from tests.harness.containers import Containers, slug
from tests.harness.ports import free_port as free_port_helper

_RESOURCES = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    # The engine layers run without pytest-django; keep its keys in pyproject.toml known.
    if pluginmanager.is_blocked("django"):
        for key in ("DJANGO_SETTINGS_MODULE", "django_find_project"):
            parser.addini(key, "pytest-django setting, unused in the engine layers")


@pytest.fixture(scope="session")
def run_id() -> str:
    return docker_helpers.run_id()


@pytest.fixture(scope="session", autouse=True)
def docker_engine() -> None:
    problem = docker_helpers.engine_problem()
    if problem is None:
        return
    if ci():
        pytest.fail(f"CI is set and no Docker engine answers: {problem}", pytrace=False)
    pytest.skip(f"no Docker engine answers ({problem}); tests/run starts one")


def _track(request: pytest.FixtureRequest, resource: object) -> None:
    request.node.stash.setdefault(_RESOURCES, []).append(resource)


@pytest.fixture
def compose_project(
    request: pytest.FixtureRequest, run_id: str, tmp_path: Path
) -> Iterator[Callable[..., ComposeProject]]:
    """compose_project(*files, env=None, env_files=(), project_directory=None) -> ComposeProject

    `files` are compose files relative to the repository root (or absolute).
    """
    projects: list[ComposeProject] = []

    def make(
        *files: Path | str,
        env: Mapping[str, str] | None = None,
        env_files: Sequence[Path | str] = (),
        project_directory: Path | str | None = None,
    ) -> ComposeProject:
        name = f"{run_id}-{slug(request.node.name, 40)}-{len(projects) + 1}"
        project = ComposeProject(
            name,
            files or ["compose.yaml"],
            tmp_path,
            env=env,
            env_files=env_files,
            project_directory=project_directory,
            cwd=REPO,
        )
        projects.append(project)
        _track(request, project)
        return project

    try:
        yield make
    finally:
        errors = []
        for project in reversed(projects):
            try:
                project.down()
            except Exception as error:  # every project must get its down, whatever failed
                errors.append(f"{project.name}: {error}")
        if errors:
            pytest.fail("compose down failed: " + "; ".join(errors), pytrace=False)


@pytest.fixture
def containers(request: pytest.FixtureRequest, run_id: str) -> Iterator[Containers]:
    factory = Containers(run_id, request.node.name)
    _track(request, factory)
    try:
        yield factory
    finally:
        problems = factory.remove_all()
        if problems:
            pytest.fail("could not remove: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def free_port() -> Callable[[], int]:
    return free_port_helper


@pytest.fixture
def build_image() -> Callable[..., str]:
    return docker_helpers.build_image


def _logs_of(resource: object) -> list[tuple[str, str]]:
    if isinstance(resource, ComposeProject):
        return [(resource.describe(), resource.logs())]
    if isinstance(resource, Containers):
        return [(c.describe(), c.logs()) for c in resource.started]
    return []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    measurements.settle(item.nodeid, report.when, report.passed)
    if report.failed and report.when in ("setup", "call"):
        for resource in item.stash.get(_RESOURCES, []):
            for title, logs in _logs_of(resource):
                report.sections.append((f"logs of {title}", logs or "(no output)"))
    return report


# trylast: after pytest's own session finish, which tears down what an interrupted test held.
@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if docker_helpers.engine_problem() is not None:
        return
    found = leftovers.find(docker_helpers.run_id())
    if not found:
        return
    leftovers.remove(found)
    listing = ", ".join(f"{kind} {name}" for kind, name in found)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"LEFT BEHIND by this run (now removed): {listing}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
