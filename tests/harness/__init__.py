"""The test harness: engine provisioning, base images and helpers every layer shares.

REPO is the checkout's root, the one place tests find the project's files from.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
