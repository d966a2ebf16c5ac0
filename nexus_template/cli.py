"""`nexus-template`: update one service or a whole fleet and report what happened; list registrations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nexus_template.services import add_services_command, run_services_command
from nexus_template.update import table, update_all, update_service

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nexus-template", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    one = commands.add_parser("update", help="update one service (default: the current folder)")
    one.add_argument("service", nargs="?", default=".", type=Path)
    one.add_argument("--data", action="append", default=[], metavar="NAME=VALUE", help="change an answer")

    fleet = commands.add_parser("update-all", help="update every service found under FOLDER, one at a time")
    fleet.add_argument("folder", type=Path)
    fleet.add_argument("--commit", action="store_true", help="commit each clean update on its own")

    for command in (one, fleet):
        command.add_argument("--vcs-ref", help="template version (tag or commit); default: the newest tag")
        command.add_argument("--test", action="store_true", help="run each service's tests after its update")

    add_services_command(commands)

    args = parser.parse_args(argv)
    if args.command == "services":
        return run_services_command(args)
    if args.command == "update":
        results = [
            update_service(args.service, vcs_ref=args.vcs_ref, data=_data(args.data), run_tests=args.test)
        ]
        root = args.service.resolve().parent
    else:
        if not args.folder.is_dir():
            parser.error(f"{args.folder} is not a folder")
        results = update_all(args.folder, vcs_ref=args.vcs_ref, run_tests=args.test, commit=args.commit)
        root = args.folder.resolve()
        if not results:
            print(f"no services of this template under {args.folder}", file=sys.stderr)
            return 1
    print(table(results, root))
    failed = [result for result in results if result.failed]
    if failed:
        print(f"\n{len(failed)} of {len(results)} service(s) need attention.", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
