"""The test harness: engine provisioning, base images and helpers every layer shares.

REPO is the checkout's root, the one place tests find the project's files from. `ci()` says
whether this is CI (CI set by .ci/run), where a test that cannot run fails instead of skipping.
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
