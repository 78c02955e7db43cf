"""The faults layer uses the stack layer's fixtures: the exact compose.yaml, a stack a module."""

from tests.stack.conftest import pytest_runtest_makereport, shared_stack

__all__ = ["pytest_runtest_makereport", "shared_stack"]
