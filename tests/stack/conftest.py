"""Fixtures of the stack layer (the faults layer imports them too).

Which tests share a compose project: a test that changes state another test could see (stops,
kills, recreates or scales a container, exhausts a client limit, changes configuration or data
other tests read) boots its own project (`boot(compose_project, ...)`, one project name per
test). Tests that only read, or add data under names of their own that no other test reads,
may share their module's project through `shared_stack`: it saves a boot per test.
"""

from collections.abc import Iterator

import pytest

from tests.harness.containers import slug
from tests.harness.ports import free_port
from tests.stack.support import Stack, failure_logs, running_stack


@pytest.fixture(scope="module")
def shared_stack(
    request: pytest.FixtureRequest, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One stack for a module's read-only tests (see above), with the admin user
    (support.SUPERUSER) created. A module may set STACK_ENV (a dict of .env values) and
    STACK_FILES (compose files) to configure it."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    with running_stack(
        f"{run_id}-{slug(module, 40)}",
        tmp_path_factory.mktemp("stack-env"),
        free_port(),
        getattr(request.module, "STACK_ENV", None),
        getattr(request.module, "STACK_FILES", ("compose.yaml",)),
    ) as stack:
        stack.create_superuser()
        yield stack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    if report.failed and report.when == "call":
        report.sections.extend(failure_logs(item))
    return report
