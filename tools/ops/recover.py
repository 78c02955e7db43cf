"""recover: a new VM from the remote alone (a disaster drill, or a disaster). Given in .env the
remote (OPS_BACKUP_REMOTE, OPS_BACKUP_SSH_KEY, OPS_BACKUP_KNOWN_HOSTS) and the old VM's backup
key (OPS_BACKUP_KEY), it brings the stack up with the database at the end of the remote's
archive and the photos of its newest snapshot.

The steps, each with one way to fail:
  check     versions; nothing of this project exists yet (no container, no database volume);
            the remote and the key are set
  images    the release's images, built from this checkout (as `./ops deploy`)
  secrets   init-secrets stores the given backup key (and makes the others)
  database  pgBackRest restores the remote's newest base backup into the empty database volume,
            with every archived segment after it (postgres/restore-db.sh into)
  photos    the remote's newest snapshot into the empty media volume
  password  the restored cluster opens with this VM's database password (the old VM's is gone)
  up        the whole stack, healthy; web applies the release's migrations as it starts
  backup    this VM's own repository gets a first base backup; archiving carries on to both
"""

from __future__ import annotations

import datetime
import time

from tools.ops import commands
from tools.ops.archiving import LOCAL, NAMES, REMOTE, Archiving, shown
from tools.ops.console import Console, OpsError
from tools.ops.data import Data
from tools.ops.deploy import BUILD, Deployment, Release
from tools.ops.images import Images
from tools.ops.pitr import LATEST
from tools.ops.project import Project

STEPS = ("check", "images", "secrets", "database", "photos", "password", "up", "backup")
# The remote's settings a recovery cannot do without.
NEEDED = ("OPS_BACKUP_REMOTE", "OPS_BACKUP_SSH_KEY", "OPS_BACKUP_KNOWN_HOSTS", "OPS_BACKUP_KEY")
DB_VOLUME = "db-data"


class Recovery:
    def __init__(self, project: Project, console: Console) -> None:
        self.project = project
        self.console = console
        self.archiving = Archiving(project)
        self.data = Data(project)
        images = Images(project)
        self.release = Release(images.checkout_version(), images.proxy_version())
        self.deployment = Deployment(project, console, self.release, BUILD)
        # Found by photos: the snapshot restored.
        self.snapshot = ""

    def check(self) -> None:
        engine, compose = self.project.check_versions()
        missing = [name for name in NEEDED if not self.project.setting(name)]
        if missing:
            raise OpsError(f"set {', '.join(missing)} in {self.project.env_file} first: the "
                           "remote, its keys and the old VM's backup key (docs/operations.md, "
                           "Backups)")  # fmt: skip
        if self.project.all_containers():
            raise OpsError(
                "this project already has containers: recover is for a new VM (or a new "
                "project); use ./ops restore --time to go back on this one"
            )
        volume = f"{self.project.name()}_{DB_VOLUME}"
        if self.project.run(commands.volume_inspect(volume), check=False).returncode == 0:
            raise OpsError(
                f"the volume {volume} exists: recover fills an empty database only; remove it "
                f"first if it is a leftover (docker volume rm {volume})"
            )
        self.console.note(f"Docker Engine {engine}, compose {compose}; release "
                          f"{self.release.app}")  # fmt: skip

    def secrets(self) -> None:
        result = self.project.run(commands.compose("run", "--rm", "--pull", "never", "-T",
                                                   "init-secrets"), what="init-secrets",
                                  env=self.release.env)  # fmt: skip
        self.console.note(", ".join(line.removeprefix("init-secrets: ")
                                    for line in result.stdout.splitlines()))  # fmt: skip

    def database(self) -> None:
        started = time.monotonic()
        restored = self.project.run(
            commands.one_off_as_root("db", "backup-run", "restore-db", "into", str(REMOTE), LATEST),
            env=self.release.env, what="restoring the database from the remote", timeout=3600,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        self.console.note(f"{restored} in {time.monotonic() - started:.1f} s")

    def photos(self) -> None:
        snapshots = self.archiving.photo_snapshots(REMOTE)
        if not snapshots:
            raise OpsError("the remote holds no snapshot of the photos")
        self.snapshot, taken = snapshots[-1]
        # The media volume made as web would make it: its root the app user's (Docker copies the
        # image's folder, owner included), so the site can add photos beside the restored ones.
        self.project.run(
            commands.one_off("web", entrypoint="true"),
            env=self.release.env, what="making the media volume",
        )  # fmt: skip
        restored = self.project.run(
            commands.one_off_with_profile("tools", "photos-restore", "into", NAMES[REMOTE],
                                          self.snapshot),
            env=self.release.env, what="restoring the photos from the remote", timeout=3600,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        self.console.note(f"{restored}, taken {shown(taken)}")

    def password(self) -> None:
        self.project.run(commands.up("db", wait=True, no_deps=True), env=self.release.env,
                         what="starting the restored database", timeout=600)  # fmt: skip
        self.data.wait_until_opened(600)
        self.console.note(self.project.run(
            commands.in_service("db", "set-role-password"),
            what="giving the database this VM's password",
        ).stdout.strip())  # fmt: skip

    def backup(self) -> None:
        self.archiving.stanza()
        label = self.archiving.base_backup(LOCAL, datetime.datetime.now(datetime.timezone.utc))
        self.console.note(f"base backup {label} in the {NAMES[LOCAL]} repository")

    def run(self) -> str:
        for name, action in (
            ("check", self.check), ("images", self.deployment.ensure_images),
            ("secrets", self.secrets), ("database", self.database), ("photos", self.photos),
            ("password", self.password), ("up", self.deployment.up),
            ("backup", self.backup),
        ):  # fmt: skip
            with self.console.step(name):
                action()
        self.deployment.record()
        return (f"{self.project.name()} recovered from the remote: the database at the end of its "
                f"archive, the photos of snapshot {self.snapshot}; release {self.release.app} "
                "serves")  # fmt: skip


def recover(project: Project, console: Console) -> str:
    return Recovery(project, console).run()
