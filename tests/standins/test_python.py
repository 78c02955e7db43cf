"""The python slim image's documented contract (docker-library/python)."""

import re

from tests.harness.docker import image_config
from tests.harness.standins import promised_version

# A small pure-Python wheel from PyPI, pinned by hash: proves pip reaches the index over TLS
# from inside the image and may install system-wide.
PYPI_PACKAGE = "six==1.17.0"
PYPI_HASH = "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"


def sh(containers, image: str, script: str):
    result = containers.run_once(image, "sh", "-c", script)
    assert result.returncode == 0, f"{script!r} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def test_interpreter_and_pip_live_in_usr_local_bin(containers, python_image):
    out = sh(containers, python_image, "for c in python python3 pip; do command -v $c; done")
    assert out.split() == ["/usr/local/bin/python", "/usr/local/bin/python3", "/usr/local/bin/pip"]


def test_utf8_locale_and_python3_as_the_default_command(containers, python_image):
    config = image_config(python_image)
    assert "LANG=C.UTF-8" in config["Env"]
    assert config["Cmd"] == ["python3"]
    out = sh(
        containers, python_image, 'python3 -c "import sys; print(sys.getfilesystemencoding())"'
    )
    assert out.strip() == "utf-8"
    repl = containers.run_once(python_image, options=["--interactive"], timeout=60)
    assert repl.returncode == 0


def test_a_virtualenv_can_be_created_and_used(containers, python_image):
    out = sh(
        containers,
        python_image,
        "python -m venv /opt/venv && /opt/venv/bin/pip --version "
        "&& /opt/venv/bin/python -c 'import sys; print(sys.prefix)'",
    )
    assert re.search(r"^pip \d+", out, re.MULTILINE)
    assert out.splitlines()[-1] == "/opt/venv"


def test_pip_installs_system_wide_from_pypi_over_tls(containers, python_image):
    out = sh(
        containers,
        python_image,
        f"printf '%s --hash=%s\\n' '{PYPI_PACKAGE}' '{PYPI_HASH}' >/tmp/req.txt "
        "&& pip install --quiet --no-cache-dir --root-user-action=ignore --require-hashes "
        "-r /tmp/req.txt && cd / && python -c 'import six; print(six.__file__)'",
    )
    assert out.strip().startswith("/usr/local/lib/python3")


def test_version_is_the_tags(containers, python_image):
    out = sh(
        containers, python_image, 'python3 -c "import platform; print(platform.python_version())"'
    )
    wanted = promised_version(python_image)
    version = out.strip()
    assert version == wanted or version.startswith(wanted + ".")
