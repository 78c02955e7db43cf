"""Which Debian mirror this machine's apt already uses.

The harness fetches packages of other Debian releases (the engine from trixie, nginx from forky,
stand-in root filesystems) from that same mirror instead of a hard-coded host, so a machine behind
a local mirror or a snapshot keeps working. Standard library only: the engine installer runs this
with the host's python3 (`python3 tests/harness/debian_sources.py archive|security|keyring`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

APT_DIR = Path("/etc/apt")
OS_RELEASE = Path("/etc/os-release")


class NoDebianMirrorError(RuntimeError):
    pass


@dataclass(frozen=True)
class Source:
    uri: str
    suite: str
    signed_by: str | None


@dataclass(frozen=True)
class DebianMirrors:
    archive: str
    security: str | None
    keyring: str | None


def _deb822_sources(text: str) -> list[Source]:
    sources = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace() and key:
                fields[key] += "\n" + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
            continue
        signed_by = fields.get("signed-by")
        if signed_by and "\n" in signed_by:  # an inline key block, not a path
            signed_by = None
        sources += [
            Source(uri, suite, signed_by)
            for uri in fields.get("uris", "").split()
            for suite in fields.get("suites", "").split()
        ]
    return sources


def _one_line_sources(text: str) -> list[Source]:
    sources = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        words = line.split()[1:]
        signed_by = None
        if words and words[0].startswith("["):
            options = []
            while words:
                word = words.pop(0)
                options.append(word.strip("[]"))
                if word.endswith("]"):
                    break
            for option in options:
                name, _, value = option.partition("=")
                if name == "signed-by":
                    signed_by = value
        if len(words) >= 2:
            sources.append(Source(words[0], words[1], signed_by))
    return sources


def configured_sources(apt_dir: Path = APT_DIR) -> list[Source]:
    sources = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        sources += _one_line_sources(main_list.read_text())
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                sources += _one_line_sources(path.read_text())
            elif path.suffix == ".sources":
                sources += _deb822_sources(path.read_text())
    return sources


def host_codename(os_release: Path = OS_RELEASE) -> str:
    for line in os_release.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value:
            return value.strip().strip('"')
    raise NoDebianMirrorError(f"{os_release} names no VERSION_CODENAME: is this Debian?")


def debian_mirrors(apt_dir: Path = APT_DIR, codename: str | None = None) -> DebianMirrors:
    """The archive serving the host's own release, and its security archive if configured."""
    codename = codename or host_codename()
    sources = configured_sources(apt_dir)
    archive = next((s for s in sources if s.suite == codename), None)
    if archive is None:
        raise NoDebianMirrorError(
            f"no apt source in {apt_dir} serves Debian '{codename}': "
            "cannot tell which mirror to use"
        )
    security = next((s for s in sources if s.suite == f"{codename}-security"), None)
    return DebianMirrors(
        archive=archive.uri.rstrip("/"),
        security=security.uri.rstrip("/") if security else None,
        keyring=archive.signed_by,
    )


def main(argv: list[str]) -> int:
    fields = ("archive", "security", "keyring")
    if len(argv) != 1 or argv[0] not in fields:
        print(f"usage: debian_sources.py {'|'.join(fields)}", file=sys.stderr)
        return 2
    try:
        mirrors = debian_mirrors()
    except NoDebianMirrorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(getattr(mirrors, argv[0]) or "")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
