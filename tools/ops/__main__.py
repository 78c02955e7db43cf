"""./ops VERB [...]: the verbs ops run on the VM. `./ops --help` lists them."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from tools.ops import backup as backing_up
from tools.ops import deploy as deploying
from tools.ops import init as initialising
from tools.ops import logs as reading_logs
from tools.ops import metrics as measuring
from tools.ops import pitr as rewinding
from tools.ops import recover as recovering
from tools.ops import restore as restoring
from tools.ops import schedule as scheduling
from tools.ops import status as reporting
from tools.ops.console import Console, OpsError, fail
from tools.ops.data import Data
from tools.ops.project import Project

STEPS = {
    "init": initialising.STEPS,
    "deploy": deploying.STEPS,
    "rollback": deploying.STEPS,
    "status": reporting.STEPS,
    "logs": reading_logs.STEPS,
    "backup": backing_up.STEPS,
    "backups": backing_up.LIST_STEPS,
    "restore": restoring.STEPS,
    "recover": recovering.STEPS,
    "schedule": scheduling.STEPS,
    "metrics": measuring.STEPS,
}
# Verbs that change the stack take the project's lock: one at a time.
LOCKED = ("deploy", "rollback", "backup", "restore", "recover")
WITHOUT_HELP = (
    "a compose file the running containers were made with that COMPOSE_FILE no longer names, "
    "dropped on purpose (switching an override off); repeatable"
)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="./ops", description="Operate the stack on this VM.")
    main.add_argument(
        "--project-dir", type=Path, default=Path.cwd(),
        help="the folder holding compose.yaml and .env (default: the current one)",
    )  # fmt: skip
    verbs = main.add_subparsers(dest="verb", required=True, metavar="VERB")

    init = verbs.add_parser("init", help="the first start's settings in .env (host, TLS)")
    init.add_argument("--host", action="append", default=[], metavar="NAME",
                      help="a host name the site answers to; repeatable")  # fmt: skip
    way = init.add_mutually_exclusive_group()
    way.add_argument(
        "--balancer",
        metavar="CIDR",
        help="HTTPS ends at a load balancer at these addresses (comma-separated)",
    )
    way.add_argument(
        "--tls-dir", metavar="DIR", help="HTTPS ends at nginx, with DIR/tls.crt and DIR/tls.key"
    )
    way.add_argument("--plain-http", action="store_true",
                     help="a trial over plain HTTP: no TLS anywhere")  # fmt: skip

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
    deploy.add_argument(
        "--refresh-base", action="store_true",
        help="pull the newest base images first and build the checkout on them",
    )  # fmt: skip
    deploy.add_argument("--without", action="append", default=[], metavar="FILE",
                        help=WITHOUT_HELP)  # fmt: skip

    rollback = verbs.add_parser("rollback", help="return to the previous version")
    rollback.add_argument("--without", action="append", default=[], metavar="FILE",
                          help=WITHOUT_HELP)  # fmt: skip
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

    status = verbs.add_parser(
        "status", help="versions, health and rollback target; exit 0 healthy, 1 degraded, 2 down"
    )
    status.add_argument("--json", action="store_true", help="one JSON object, for monitoring")

    logs = verbs.add_parser("logs", help="a service's logs, its retired releases' included")
    logs.add_argument("service", help="web, worker, nginx, db...")
    logs.add_argument("--since", metavar="DURATION", help="only the last 30m, 2h, 1d...")

    backup = verbs.add_parser("backup", help="one verified archive of the database and photos")
    backup.add_argument(
        "--with-secrets", action="store_true",
        help="also archive the secrets volume (the Django key, the database password)",
    )  # fmt: skip
    backup.add_argument(
        "--wait", type=float, default=0, metavar="SECONDS",
        help="wait up to SECONDS for the database to be healthy first (a run at boot)",
    )  # fmt: skip

    backups = verbs.add_parser("backups", help="the archives: age, size, verification")
    backups.add_argument(
        "--max-age", type=float, metavar="HOURS",
        help="fail unless the newest good archive is younger and archiving is current",
    )  # fmt: skip
    backups.add_argument(
        "--verify", action="store_true",
        help="read every repository of the continuous archive back (slow: every byte)",
    )  # fmt: skip
    backups.add_argument(
        "--show-key", action="store_true",
        help="print the backup key, to keep off this VM (a new VM restores with it)",
    )  # fmt: skip

    restore = verbs.add_parser(
        "restore", help="the database and photos to a moment, or to an archive's, all or nothing"
    )
    restore.add_argument(
        "archive", type=Path, nargs="?", help="an archive written by ./ops backup"
    )  # fmt: skip
    restore.add_argument(
        "--time", metavar="WHEN",
        help="a UTC moment, YYYY-MM-DDTHH:MM:SSZ, or latest: from the continuous archive",
    )  # fmt: skip
    restore.add_argument(
        "--replace", action="store_true",
        help="replace a database that holds data without asking",
    )  # fmt: skip

    verbs.add_parser(
        "recover", help="a new VM from the remote alone: the database and photos, then the stack"
    )

    verbs.add_parser(
        "metrics", help="the VM's facts for Prometheus, in OPS_METRICS_DIR (every minute)"
    )

    schedule = verbs.add_parser(
        "schedule", help="run ./ops backup daily and ./ops metrics every minute (systemd timers)"
    )
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


def run(
    args: argparse.Namespace, project: Project, console: Console
) -> tuple[str, str | None, int]:
    """The verb's summary, a last line to print after it (backup: the archive's path), and the
    exit status (status: its verdict)."""
    if args.verb == "status":
        summary, code = reporting.status(project, console)
        return summary, None, code
    if args.verb == "backups" and args.show_key:
        return backing_up.SHOW_KEY, Data(project).backup_key(), 0
    if args.verb not in LOCKED:
        return (
            {
                "init": lambda: initialising.init(
                    project,
                    console,
                    hosts=args.host,
                    balancer=args.balancer,
                    tls_dir=args.tls_dir,
                    plain_http=args.plain_http,
                ),
                "logs": lambda: reading_logs.logs(project, console, args.service, args.since),
                "backups": lambda: backing_up.backups(project, console, args.max_age, args.verify),
                "metrics": lambda: measuring.metrics(project, console),
                "schedule": lambda: scheduling.schedule(
                    project, console, args.on_calendar, args.unit_dir, args.enable
                ),
            }[args.verb](),
            None,
            0,
        )
    with project.lock(args.verb):
        if args.verb == "backup":
            summary, path = backing_up.backup(project, console, args.with_secrets, args.wait)
            return summary, str(path), 0
        without = tuple(args.without) if args.verb in ("deploy", "rollback") else ()
        return {
            "deploy": lambda: deploying.deploy(
                project, console, args.version, args.source,
                refresh_base=args.refresh_base, without=without,
            ),
            "rollback": lambda: deploying.rollback(project, console, args.schema, without),
            "restore": lambda: restore(args, project, console),
            "recover": lambda: recovering.recover(project, console),
        }[args.verb](), None, 0  # fmt: skip


def restore(args: argparse.Namespace, project: Project, console: Console) -> str:
    """An archive (./ops backup's), or a moment of the continuous archive: one of the two."""
    if (args.archive is None) == (args.time is None):
        raise OpsError("name an archive (./ops restore ARCHIVE) or a moment "
                       "(./ops restore --time YYYY-MM-DDTHH:MM:SSZ), one of the two")  # fmt: skip
    if args.time is not None:
        console.steps = list(rewinding.STEPS)
        return rewinding.restore_to(
            project, console, rewinding.parse_moment(args.time), args.replace
        )
    return restoring.restore(project, console, args.archive.resolve(), args.replace)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(args.verb, STEPS[args.verb])
    signal.signal(signal.SIGTERM, interrupted)
    # status reports "could not be read" as its own verdict, not as a failed verb's 1.
    failed = reporting.UNKNOWN if args.verb == "status" else 1
    if args.verb == "status" and args.json:
        return reporting.status_json(args.project_dir.resolve())
    try:
        summary, last, code = run(args, Project(args.project_dir.resolve()), console)
    except OpsError as error:
        fail(args.verb, console.current, error)
        return failed
    except KeyboardInterrupt:
        fail(args.verb, console.current, OpsError("interrupted"))
        return failed
    console.done(summary)
    if last is not None:
        print(last, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
