"""Reading the Debian mirror from apt's configuration."""

from pathlib import Path

import pytest

from tests.harness.debian_sources import NoDebianMirrorError, debian_mirrors


def apt_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_deb822_sources(tmp_path):
    directory = apt_dir(
        tmp_path,
        {
            "sources.list.d/debian.sources": """
Types: deb
# a snapshot mirror comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security/
Suites: bookworm-security
Components: main
""",
            "sources.list.d/other.sources": (
                "Types: deb\nURIs: https://other.example/apt\nSuites: nodistro\nComponents: main\n"
            ),
        },
    )
    mirrors = debian_mirrors(directory, codename="bookworm")
    assert mirrors.archive == "http://mirror.example/debian"
    assert mirrors.security == "http://mirror.example/debian-security"
    assert mirrors.keyring == "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_one_line_sources_with_options(tmp_path):
    directory = apt_dir(
        tmp_path,
        {
            "sources.list": (
                "# deb http://commented.example/debian bookworm main\n"
                "deb [arch=amd64 signed-by=/etc/k.gpg] http://local.example/debian bookworm main\n"
            ),
            "sources.list.d/cloud.list": "deb https://cloud.example/apt cloud-bookworm main\n",
        },
    )
    mirrors = debian_mirrors(directory, codename="bookworm")
    assert mirrors.archive == "http://local.example/debian"
    assert mirrors.security is None
    assert mirrors.keyring == "/etc/k.gpg"


def test_disabled_and_foreign_sources_do_not_count(tmp_path):
    directory = apt_dir(
        tmp_path,
        {
            "sources.list.d/debian.sources": (
                "Types: deb\nURIs: http://a.example/debian\nSuites: bookworm\nEnabled: no\n"
            ),
            "sources.list.d/x.list.disabled": "deb http://b.example/debian bookworm main\n",
        },
    )
    with pytest.raises(NoDebianMirrorError, match="serves Debian 'bookworm'"):
        debian_mirrors(directory, codename="bookworm")
