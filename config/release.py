"""What a release is made of, for the scripts that publish and prune releases in the site
volume (scripts/publish_release.py, scripts/prune_releases.py).

The image's version (APP_VERSION, from the build's VERSION argument) names the release and,
as web-<version>, the network alias nginx sends the active release's requests to (compose.yaml,
nginx/render-site-config.sh): so it must be a DNS label, the rule VERSION_PATTERN states and
tools/ops checks before it builds anything.
"""

import os
import re
from pathlib import Path

from config.errors import ConfigurationError

VERSION_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")
SITE_DIR = Path("/srv/site")
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "nginx" / "templates"


def release_version() -> str:
    version = os.environ.get("APP_VERSION", "")
    if not VERSION_PATTERN.fullmatch(version):
        raise ConfigurationError(
            f"APP_VERSION={version!r} is not a release version: lowercase letters, digits, "
            "dots and dashes, starting with a letter or digit (the image's VERSION build argument)"
        )
    return version


def static_root() -> Path:
    """Django's STATIC_ROOT, read in the image build's mode (no secret, no database)."""
    os.environ["DJANGO_BUILD_STATIC"] = "1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings  # noqa: PLC0415 (after the build mode is set)

    return Path(settings.STATIC_ROOT)
