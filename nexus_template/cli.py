"""`nexus-template`: update one service or a whole fleet and report what happened; list registrations."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from nexus_template.services import SERVICES_HELP, add_services_command, run_services_command
from nexus_template.updating import abort_update, report_json, table, update_all, update_service

# answers that only seed a new service: each service owns the fact in release/service.env afterwards
SERVICE_FACTS = {
    "service_version": "SERVICE_VERSION",
    "service_description": "SERVICE_DESCRIPTION",
    "owner": "SERVICE_OWNER",
    "capabilities": "SERVICE_CAPABILITIES",
}


def _data(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"nexus-template: --data takes NAME=VALUE, got {item!r}")
        if name in SERVICE_FACTS:
            raise SystemExit(
                f"nexus-template: {name} belongs to the service: edit {SERVICE_FACTS[name]} in its "
                "release/service.env and commit (no update needed)"
            )
        pairs[name] = value
    return pairs


def _add_update_commands(one: argparse.ArgumentParser, fleet: argparse.ArgumentParser) -> None:
    """The arguments of `update` (`one`) and `update-all` (`fleet`)."""
    one.add_argument("service", nargs="?", default=".", type=Path)
    one.add_argument("--data", action="append", default=[], metavar="NAME=VALUE", help="change an answer")
    one.add_argument(
        "--abort",
        action="store_true",
        help="back out: put the service folder back to its last commit (before the update)",
    )
    fleet.add_argument("folder", type=Path)
    fleet.add_argument("--commit", action="store_true", help="commit each clean update on its own")
    for command in (one, fleet):
        command.add_argument("--vcs-ref", help="template version (tag or commit); default: the newest tag")
        command.add_argument(
            "--plan", action="store_true", help="report what an update would do; write nothing"
        )
        command.add_argument(
            "--test",
            action="store_true",
            help="run each updated service's tests in an environment built from its updated requirements",
        )
        command.add_argument(
            "--pytest-args",
            default="",
            metavar="ARGS",
            help='arguments for pytest with --test, e.g. "-x -k api"',
        )
        command.add_argument("--json", action="store_true", help="print the report as JSON")
        command.add_argument(
            "--no-resolve",
            dest="resolve",
            action="store_false",
            help="skip asking pip whether the updated requirements resolve (offline; pins are still compared)",
        )


def _abort(service: Path) -> int:
    try:
        undone = abort_update(service)
    except ValueError as error:
        print(f"nexus-template: {error}", file=sys.stderr)
        return 1
    print(f"{service}: back to its last commit" + (f"; undone: {', '.join(undone)}" if undone else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nexus-template", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_update_commands(
        commands.add_parser("update", help="update one service (default: the current folder)"),
        commands.add_parser("update-all", help="update every service found under FOLDER, one at a time"),
    )
    add_services_command(commands.add_parser("services", help=SERVICES_HELP))

    args = parser.parse_args(argv)
    if args.command == "services":
        return run_services_command(args)
    options = {
        "vcs_ref": args.vcs_ref,
        "run_tests": args.test,
        "pytest_args": shlex.split(args.pytest_args),
        "plan": args.plan,
        "resolve": args.resolve,
    }
    if args.command == "update":
        if args.abort:
            return _abort(args.service)
        results = [update_service(args.service, data=_data(args.data), **options)]
        root = args.service.resolve().parent
    else:
        if not args.folder.is_dir():
            parser.error(f"{args.folder} is not a folder")
        results = update_all(args.folder, commit=args.commit, **options)
        root = args.folder.resolve()
        if not results:
            print(f"no services of this template under {args.folder}", file=sys.stderr)
            return 1
    print(report_json(results, root) if args.json else table(results, root))
    failed = [result for result in results if result.failed]
    if failed:
        print(f"\n{len(failed)} of {len(results)} service(s) need attention.", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
