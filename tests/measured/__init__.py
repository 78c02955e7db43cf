"""docs/' measured tables (python -m tests.measured)."""
