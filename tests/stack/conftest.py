"""Fixtures of the stack layer (the faults layer imports them too)."""

from collections.abc import Iterator

import pytest

from tests.harness.containers import slug
from tests.harness.docker import free_port
from tests.stack.support import Stack, failure_logs, running_stack


@pytest.fixture(scope="module")
def shared_stack(
    request: pytest.FixtureRequest, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One stack for a module's tests that only read or add data. A module may set STACK_ENV
    (a dict of .env values) to configure it."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    with running_stack(
        f"{run_id}-{slug(module, 40)}",
        tmp_path_factory.mktemp("stack-env"),
        free_port(),
        getattr(request.module, "STACK_ENV", None),
    ) as stack:
        yield stack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    if report.failed and report.when == "call":
        report.sections.extend(failure_logs(item))
    return report
