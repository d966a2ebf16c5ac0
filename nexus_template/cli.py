"""`nexus-template`: update one service or a whole fleet and report what happened; list registrations;
the services of a monorepo a change touches (its root workflow's matrix)."""

from __future__ import annotations

import argparse
import shlex
import sys
from contextlib import nullcontext
from pathlib import Path

from nexus_template.matrix import MATRIX_HELP, add_matrix_command, run_matrix_command
from nexus_template.services import SERVICES_HELP, add_services_command, run_services_command
from nexus_template.updating import (
    RESTORE,
    AbortRefused,
    RepositoryBusy,
    abort_update,
    changed_paths,
    exclusive,
    report_json,
    table,
    update_all,
    update_service,
)

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
    one.add_argument("service", nargs="?", type=Path, help="the service folder (default: the current folder)")
    one.add_argument("--data", action="append", default=[], metavar="NAME=VALUE", help="change an answer")
    one.add_argument(
        "--abort",
        action="store_true",
        help="undo the uncommitted update of SERVICE (required here): only the files it wrote go back",
    )
    one.add_argument(
        "--base",
        metavar="VERSION",
        help="update as if the service was made from VERSION (a tag of the template): for a service whose "
        "recorded version is gone from the template, instead of `copier recopy`, which drops your edits",
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
            help="skip asking pip whether the updated requirements resolve (pins are still compared)",
        )
        command.add_argument(
            "--offline",
            action="store_true",
            help="ask no package index: implies --no-resolve; requirements.lock is refreshed only from the "
            "cache of earlier refreshes, else left as it is and reported (review)",
        )


def _abort(service: Path) -> int:
    try:
        undone = abort_update(service)
    except AbortRefused as error:
        print(f"nexus-template: {error}", file=sys.stderr)
        return 1
    print(f"{service}: {undone.update} is undone; put back: {', '.join(undone.paths) or 'nothing'}")
    if left := [path for path in changed_paths(service) if path not in undone.changed_since]:
        print(f"{service}: left as they are (not written by the update): {', '.join(left)}")
    if undone.changed_since:  # not all of the update is undone: a person decides about these
        print(
            f"{service}: written by the update but changed since, left as they are: "
            f"{', '.join(undone.changed_since)} (`{RESTORE} FILE` puts one back to its last commit)",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nexus-template", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_update_commands(
        commands.add_parser("update", help="update one service (default: the current folder)"),
        commands.add_parser("update-all", help="update every service found under FOLDER, one at a time"),
    )
    add_services_command(commands.add_parser("services", help=SERVICES_HELP))
    add_matrix_command(commands.add_parser("matrix", help=MATRIX_HELP))

    args = parser.parse_args(argv)
    if args.command == "services":
        return run_services_command(args)
    if args.command == "matrix":
        return run_matrix_command(args)
    options = {
        "vcs_ref": args.vcs_ref,
        "run_tests": args.test,
        "pytest_args": shlex.split(args.pytest_args),
        "plan": args.plan,
        "resolve": args.resolve,
        "offline": args.offline,
    }
    if args.command == "update" and args.abort and args.service is None:
        parser.error("--abort needs the service folder: nexus-template update --abort services/NAME")
    target = (args.service or Path(".")) if args.command == "update" else args.folder
    if args.command == "update-all" and not target.is_dir():
        parser.error(f"{target} is not a folder")
    try:
        # only a run that writes takes the repository's lock (--abort writes, with or without --plan)
        writes = not args.plan or (args.command == "update" and args.abort)
        with exclusive(target) if writes else nullcontext():
            if args.command == "update" and args.abort:
                return _abort(target)
            if args.command == "update":
                results = [update_service(target, data=_data(args.data), base=args.base, **options)]
                root = target.resolve().parent
            else:
                results = update_all(target, commit=args.commit, **options)
                root = target.resolve()
    except RepositoryBusy as busy:
        print(f"nexus-template: {busy}", file=sys.stderr)
        return 1
    if not results:
        print(f"no services of this template under {target}", file=sys.stderr)
        return 1
    print(report_json(results, root) if args.json else table(results, root))
    failed = [result for result in results if result.failed]
    if failed:
        print(f"\n{len(failed)} of {len(results)} service(s) need attention.", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
