"""schedule: `./ops backup` every day and `./ops metrics` every minute, through systemd timers
(docs/operations.md, Backups and Monitoring).

Why a systemd timer rather than a cron line or a compose service: the timer catches up a run
missed while the VM was off (Persistent=true); a failed run leaves the unit failed
(`systemctl --failed`) with the verb's output in the journal under one identifier; and it
needs nothing in the stack. A compose service would have to reach the Docker socket, which is
root on the VM; cron drops the output unless mail is set up and forgets missed runs.

The timer runs exactly `ops backup --wait BOOT_WAIT_S` in the project folder, as the folder's
owner (who runs the other verbs, so the archives and .ops/ stay theirs), who must be allowed to
use Docker: root, or a member of the `docker` group (checked here). At boot a missed run starts
as soon as the engine does, before the stack is up: `--wait` lets it wait for the database to
be healthy, bounded, instead of failing. The archive folder (OPS_BACKUP_DIR) is made here, the
folder owner's, when it does not exist yet: its default is a system path only root may create.

The metrics timer runs `ops metrics` the same way, every minute to the second (Prometheus
alerts when its file is five minutes old: MetricsWriterStale). Its steps go nowhere, only a
failure reaches the journal: a minute's lines would drown everything else there. The folder it
writes to (OPS_METRICS_DIR) is made here, the folder owner's, since the default is a system
path only root may create, and compose.monitoring.yaml needs it before its first start.
"""

from __future__ import annotations

import grp
import os
import pwd
import tempfile
from pathlib import Path

from tools.ops.backup import Store
from tools.ops.console import Console, OpsError
from tools.ops.metrics import folder as metrics_folder
from tools.ops.project import Project

STEPS = ("units", "enable")
SYSTEMD_DIR = Path("/etc/systemd/system")
DEFAULT_CALENDAR = "*-*-* 03:17:00"
# A boot's engine start, the database's recovery and health check: well within this.
BOOT_WAIT_S = 600
DOCKER_GROUP = "docker"


# A metrics run must end before the next one is due; a stuck docker command is cut short.
METRICS_TIMEOUT_S = 50


def unit_name(project_name: str) -> str:
    return f"{project_name}-backup"


def metrics_unit_name(project_name: str) -> str:
    return f"{project_name}-metrics"


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


def metrics_units(directory: Path, project_name: str, user: str) -> dict[str, str]:
    """The metrics service and timer files, by file name."""
    name = metrics_unit_name(project_name)
    service = f"""\
# Written by ./ops schedule in {directory}; run it again to change it.
[Unit]
Description=Monitoring facts of {project_name} (./ops metrics)
Wants=docker.service
After=docker.service

[Service]
Type=oneshot
User={user}
WorkingDirectory={directory}
ExecStart="{directory}/ops" metrics
TimeoutStartSec={METRICS_TIMEOUT_S}
# Only a failure reaches the journal: one line starting "metrics: failed at".
StandardOutput=null
SyslogIdentifier={name}
"""
    timer = f"""\
# Written by ./ops schedule in {directory}; run it again to change it.
[Unit]
Description=Monitoring facts of {project_name}, every minute

[Timer]
OnCalendar=minutely
# systemd's default accuracy is a minute: runs could drift two minutes apart.
AccuracySec=1s

[Install]
WantedBy=timers.target
"""
    return {f"{name}.service": service, f"{name}.timer": timer}


def metrics_folder_for(path: Path, user: str) -> str:
    """OPS_METRICS_DIR made the timers' user's when it does not exist yet; an existing one is
    left as it is (./ops metrics says if that user cannot write to it)."""
    if path.exists():
        return f"the metrics go to {path}"
    try:
        path.mkdir(mode=0o755, parents=True)
        account = pwd.getpwnam(user)
        os.chown(path, account.pw_uid, account.pw_gid)
    except OSError as error:
        raise OpsError(f"cannot create OPS_METRICS_DIR {path}: {error.strerror}") from None
    return f"the metrics go to {path}, made {user}'s"


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
        written = {**units(directory, name, user, on_calendar),
                   **metrics_units(directory, name, user)}  # fmt: skip
        try:
            for file_name, text in written.items():
                write_atomically(target / file_name, text)
                console.note(f"{target / file_name}")
        except PermissionError:
            raise OpsError(f"cannot write to {target}; run it with sudo") from None
        console.note(archive_folder_for(Store(project, name).directory, user))
        console.note(metrics_folder_for(metrics_folder(project), user))
    timers = [f"{unit_name(name)}.timer", f"{metrics_unit_name(name)}.timer"]
    with console.step("enable"):
        if not enable:
            console.note("not enabled (--no-enable)")
            return f"units for {name} written to {target}, not enabled"
        project.run(["systemctl", "daemon-reload"], what="systemctl daemon-reload")
        project.run(["systemctl", "enable", "--now", *timers], what="systemctl enable")
        listed = project.run(["systemctl", "list-timers", *timers, "--no-pager"],
                             check=False).stdout.strip().splitlines()  # fmt: skip
        for line in listed[1:3]:
            console.note(line)
    return (f"{timers[0]} runs ./ops backup as {user} at {on_calendar}, {timers[1]} ./ops "
            f"metrics every minute; their output: journalctl -u {unit_name(name)} -u "
            f"{metrics_unit_name(name)}")  # fmt: skip
