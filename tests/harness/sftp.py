"""A real SFTP server for the backup tests: OpenSSH from Debian, SFTP only, one chrooted user
(`offsite`) that logs in with a key the test makes. The operator's side of it is what
docs/operations.md asks for: OPS_BACKUP_REMOTE, a private key file and a known_hosts file with
the server's host key (never trusted on first use).

    with sftp_server(run_id, "backups", tmp_path) as remote:
        remote.join(network)               # a network the stack's db and photos-backup are on
        env = remote.settings()            # OPS_BACKUP_REMOTE, OPS_BACKUP_SSH_KEY, ..._KNOWN_HOSTS
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.harness import REPO
from tests.harness.base_images import dockerfile_base
from tests.harness.containers import Container, Containers
from tests.harness.docker import build_image, docker

IMAGE = "catcollector-test/sftp:latest"
CONTEXT = Path(__file__).parent / "sftp"
# The name the stack reaches it by, on each network it joins.
ALIAS = "backup-server"
USER = "offsite"
# Inside the user's chroot.
REPO_PATH = "/repo"
START_BOUND_S = 30


def image() -> str:
    base = dockerfile_base(REPO, "nginx/Dockerfile", named_contexts=frozenset({"web"}))
    build_image(CONTEXT, IMAGE, build_args={"BASE": base})
    return IMAGE


@dataclass
class SftpServer:
    container: Container
    key_file: Path
    known_hosts: Path

    def join(self, network: str) -> None:
        docker("network", "connect", "--alias", ALIAS, network, self.container.name)

    def leave(self, network: str) -> None:
        docker("network", "disconnect", "--force", network, self.container.name)

    def settings(self) -> dict[str, str]:
        """The .env lines that point a stack at this server."""
        return {
            "OPS_BACKUP_REMOTE": f"sftp://{USER}@{ALIAS}{REPO_PATH}",
            "OPS_BACKUP_SSH_KEY": str(self.key_file),
            "OPS_BACKUP_KNOWN_HOSTS": str(self.known_hosts),
        }

    def files(self) -> list[str]:
        """Every file stored on the server, relative to the repository folder."""
        listed = self.container.exec("find", f"/srv/sftp/{USER}{REPO_PATH}", "-type", "f").stdout
        prefix = f"/srv/sftp/{USER}{REPO_PATH}/"
        return sorted(line.removeprefix(prefix) for line in listed.splitlines())

    def stop(self) -> None:
        docker("stop", self.container.name)

    def start(self) -> None:
        docker("start", self.container.name)


@contextmanager
def sftp_server(run_id: str, owner: str, folder: Path) -> Iterator[SftpServer]:
    """The server, with a key pair for the stack in `folder`; removed afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    key_file = folder / "id_ed25519"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    containers = Containers(run_id, owner)
    try:
        container = containers.run(image(), env={"AUTHORIZED_KEY": public.decode()})
        logs = container.wait_for_log(r"Server listening on", START_BOUND_S)
        host_key = re.search(r"^host key: (ssh-ed25519 \S+)", logs, re.M).group(1)
        known_hosts = folder / "known_hosts"
        known_hosts.write_text(f"{ALIAS} {host_key}\n")
        known_hosts.chmod(0o600)
        yield SftpServer(container, key_file, known_hosts)
    finally:
        problems = containers.remove_all()
        if problems:
            raise AssertionError("sftp server not removed: " + "; ".join(problems))
