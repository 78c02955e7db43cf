"""./ops VERB [...]: the verbs ops run on the VM. `./ops --help` lists them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.ops import deploy as deploying
from tools.ops import status as reporting
from tools.ops.console import Console, OpsError, fail
from tools.ops.project import Project


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
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    steps = {"deploy": deploying.STEPS, "rollback": deploying.STEPS,
             "status": ("containers", "versions")}[args.verb]  # fmt: skip
    console = Console(args.verb, steps)
    try:
        project = Project(args.project_dir.resolve())
        if args.verb == "status":
            summary = reporting.status(project, console)
        else:
            with project.lock(args.verb):
                if args.verb == "deploy":
                    summary = deploying.deploy(project, console, args.version, args.source)
                else:
                    summary = deploying.rollback(project, console, args.schema)
    except OpsError as error:
        return fail(args.verb, console.current, error)
    except KeyboardInterrupt:
        return fail(args.verb, console.current, OpsError("interrupted"))
    console.done(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
