"""schedule: `./ops backup` every day through a systemd timer (docs/operations.md, Backups).

Why a systemd timer rather than a cron line or a compose service: the timer catches up a run
missed while the VM was off (Persistent=true); a failed run leaves the unit failed
(`systemctl --failed`) with the verb's output in the journal under one identifier; and it
needs nothing in the stack. A compose service would have to reach the Docker socket, which is
root on the VM; cron drops the output unless mail is set up and forgets missed runs.

The timer runs exactly `ops backup --wait BOOT_WAIT_S` in the project folder, as the folder's
owner (who runs the other verbs, so the archives and .ops/ stay theirs), who must be allowed to
use Docker: root, or a member of the `docker` group (checked here). At boot a missed run starts
as soon as the engine does, before the stack is up: `--wait` lets it wait for the database to
be healthy, bounded, instead of failing.
"""

from __future__ import annotations

import grp
import os
import pwd
import tempfile
from pathlib import Path

from tools.ops.backup import Store
from tools.ops.console import Console, OpsError
from tools.ops.project import Project

STEPS = ("units", "enable")
SYSTEMD_DIR = Path("/etc/systemd/system")
DEFAULT_CALENDAR = "*-*-* 03:17:00"
# A boot's engine start, the database's recovery and health check: well within this.
BOOT_WAIT_S = 600
DOCKER_GROUP = "docker"


def unit_name(project_name: str) -> str:
    return f"{project_name}-backup"


def units(directory: Path, project_name: str, user: str, on_calendar: str) -> dict[str, str]:
    """The service and timer files, by file name."""
    name = unit_name(project_name)
    service = f"""\
# Written by ./ops schedule in {directory}; run it again to change it.
[Unit]
Description=Backup of {project_name} (./ops backup)
Wants=docker.service
After=docker.service

[Service]
Type=oneshot
User={user}
WorkingDirectory={directory}
ExecStart="{directory}/ops" backup --wait {BOOT_WAIT_S}
# Every line of the verb's output goes to the journal under this name; a failure is one line
# starting "backup: failed at", and the unit is left failed (systemctl --failed).
SyslogIdentifier={name}
"""
    timer = f"""\
# Written by ./ops schedule in {directory}; run it again to change it.
[Unit]
Description=Daily backup of {project_name}

[Timer]
OnCalendar={on_calendar}
# A run missed while the VM was off happens at the next boot.
Persistent=true

[Install]
WantedBy=timers.target
"""
    return {f"{name}.service": service, f"{name}.timer": timer}


def may_use_docker(user: str) -> bool:
    """Root, or a member of the docker group (the socket's group on Docker's packages)."""
    if user == "root":
        return True
    try:
        group = grp.getgrnam(DOCKER_GROUP)
    except KeyError:
        return False
    return user in group.gr_mem or pwd.getpwnam(user).pw_gid == group.gr_gid


def archive_folder_for(folder: Path, user: str) -> str:
    """The archive folder (OPS_BACKUP_DIR) made the backups' user's when it does not exist yet
    (the default is a system path, which only root may create); an existing one is left as it
    is, and the backup's check says if that user cannot write to it."""
    if folder.exists():
        return f"archives go to {folder}"
    try:
        folder.mkdir(mode=0o750, parents=True)
        account = pwd.getpwnam(user)
        os.chown(folder, account.pw_uid, account.pw_gid)
    except OSError as error:
        raise OpsError(f"cannot create the archive folder {folder}: {error.strerror}") from None
    return f"archives go to {folder}, made {user}'s"


def write_atomically(path: Path, text: str) -> None:
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.chmod(partial, 0o644)
    os.replace(partial, path)


def schedule(
    project: Project, console: Console, on_calendar: str, unit_dir: Path | None, enable: bool
) -> str:
    if any(character in on_calendar for character in "\n\r"):
        raise OpsError("--on-calendar is one systemd calendar expression, on one line")
    name = project.name()
    directory = project.directory
    user = pwd.getpwuid(directory.stat().st_uid).pw_name
    target = unit_dir or SYSTEMD_DIR
    with console.step("units"):
        if not may_use_docker(user):
            raise OpsError(
                f"{user} owns {directory} and would run the backups, but may not use Docker: "
                f"add them to the {DOCKER_GROUP} group (usermod -aG {DOCKER_GROUP} {user})"
            )
        if not target.is_dir():
            raise OpsError(f"{target} is not a folder (is this a systemd VM?)")
        try:
            for file_name, text in units(directory, name, user, on_calendar).items():
                write_atomically(target / file_name, text)
                console.note(f"{target / file_name}")
        except PermissionError:
            raise OpsError(f"cannot write to {target}; run it with sudo") from None
        console.note(archive_folder_for(Store(project, name).directory, user))
    with console.step("enable"):
        if not enable:
            console.note("not enabled (--no-enable)")
            return f"units for {name} written to {target}, not enabled"
        project.run(["systemctl", "daemon-reload"], what="systemctl daemon-reload")
        project.run(["systemctl", "enable", "--now", f"{unit_name(name)}.timer"],
                    what="systemctl enable")  # fmt: skip
        nxt = project.run(["systemctl", "list-timers", f"{unit_name(name)}.timer", "--no-pager"],
                          check=False).stdout.strip().splitlines()  # fmt: skip
        if len(nxt) > 1:
            console.note(nxt[1])
    return (f"{unit_name(name)}.timer runs ./ops backup as {user} at {on_calendar}; "
            f"its output: journalctl -u {unit_name(name)}")  # fmt: skip
