"""./ops VERB [...]: the verbs ops run on the VM. `./ops --help` lists them."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from tools.ops import backup as backing_up
from tools.ops import deploy as deploying
from tools.ops import restore as restoring
from tools.ops import schedule as scheduling
from tools.ops import status as reporting
from tools.ops.console import Console, OpsError, fail
from tools.ops.project import Project

STEPS = {
    "deploy": deploying.STEPS,
    "rollback": deploying.STEPS,
    "status": ("containers", "versions"),
    "backup": backing_up.STEPS,
    "backups": backing_up.LIST_STEPS,
    "restore": restoring.STEPS,
    "schedule": scheduling.STEPS,
}
# Verbs that change the stack take the project's lock: one at a time.
LOCKED = ("deploy", "rollback", "backup", "restore")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="./ops", description="Operate the stack on this VM.")
    main.add_argument(
        "--project-dir", type=Path, default=Path.cwd(),
        help="the folder holding compose.yaml and .env (default: the current one)",
    )  # fmt: skip
    verbs = main.add_subparsers(dest="verb", required=True, metavar="VERB")

    deploy = verbs.add_parser("deploy", help="deploy a version with no failed request")
    deploy.add_argument("version", nargs="?", help="default: the checkout's, from git")
    source = deploy.add_mutually_exclusive_group()
    source.add_argument(
        "--build",
        dest="source",
        action="store_const",
        const="build",
        help="build the images from this checkout when they are missing",
    )
    source.add_argument(
        "--pull",
        dest="source",
        action="store_const",
        const="pull",
        help="pull the images from their registry when they are missing",
    )

    rollback = verbs.add_parser("rollback", help="return to the previous version")
    schema = rollback.add_mutually_exclusive_group()
    schema.add_argument(
        "--keep-schema",
        dest="schema",
        action="store_const",
        const="keep",
        help="run the previous code on the newer schema",
    )
    schema.add_argument(
        "--reverse-migrations",
        dest="schema",
        action="store_const",
        const="reverse",
        help="reverse the newer migrations first (may lose data)",
    )

    verbs.add_parser("status", help="versions, health and rollback target")

    backup = verbs.add_parser("backup", help="one verified archive of the database and photos")
    backup.add_argument(
        "--with-secrets", action="store_true",
        help="also archive the secrets volume (the Django key, the database password)",
    )  # fmt: skip

    backups = verbs.add_parser("backups", help="the archives: age, size, verification")
    backups.add_argument(
        "--max-age", type=float, metavar="HOURS",
        help="fail unless the newest good archive is younger (for monitoring)",
    )  # fmt: skip

    restore = verbs.add_parser("restore", help="replace the database and photos by an archive's")
    restore.add_argument("archive", type=Path, help="an archive written by ./ops backup")
    restore.add_argument(
        "--replace", action="store_true",
        help="replace a database that holds data without asking",
    )  # fmt: skip

    schedule = verbs.add_parser("schedule", help="run ./ops backup daily (systemd timer)")
    schedule.add_argument(
        "--on-calendar", default=scheduling.DEFAULT_CALENDAR, metavar="WHEN",
        help=f"a systemd calendar expression (default: {scheduling.DEFAULT_CALENDAR!r})",
    )  # fmt: skip
    schedule.add_argument(
        "--unit-dir", type=Path, metavar="DIR",
        help=f"where to write the units (default: {scheduling.SYSTEMD_DIR})",
    )  # fmt: skip
    schedule.add_argument(
        "--no-enable", dest="enable", action="store_false",
        help="write the units only (no systemctl)",
    )  # fmt: skip
    return main


def interrupted(signum: int, frame: object) -> None:
    # SIGTERM (systemd stopping the unit, `kill`) undoes a verb as Ctrl-C does.
    raise KeyboardInterrupt


def run(args: argparse.Namespace, project: Project, console: Console) -> tuple[str, str | None]:
    """The verb's summary, and a last line to print after it (backup: the archive's path)."""
    if args.verb not in LOCKED:
        return {
            "status": lambda: reporting.status(project, console),
            "backups": lambda: backing_up.backups(project, console, args.max_age),
            "schedule": lambda: scheduling.schedule(
                project, console, args.on_calendar, args.unit_dir, args.enable
            ),
        }[args.verb](), None
    with project.lock(args.verb):
        if args.verb == "backup":
            summary, path = backing_up.backup(project, console, args.with_secrets)
            return summary, str(path)
        return {
            "deploy": lambda: deploying.deploy(project, console, args.version, args.source),
            "rollback": lambda: deploying.rollback(project, console, args.schema),
            "restore": lambda: restoring.restore(
                project, console, args.archive.resolve(), args.replace
            ),
        }[args.verb](), None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(args.verb, STEPS[args.verb])
    signal.signal(signal.SIGTERM, interrupted)
    try:
        summary, last = run(args, Project(args.project_dir.resolve()), console)
    except OpsError as error:
        return fail(args.verb, console.current, error)
    except KeyboardInterrupt:
        return fail(args.verb, console.current, OpsError("interrupted"))
    console.done(summary)
    if last is not None:
        print(last, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
