"""`nexus-template services`: the registrations in etcd as a table or JSON, once or live (`--watch`).

`--watch` prints the registrations, then each change as etcd reports it through its JSON gateway's watch
stream (no polling: a change shows within milliseconds, and none is missed between the read and the watch,
which starts at the read's revision + 1). When etcd goes away it says so and reads again once it is back.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from nexus_template.registry import DEFAULT_PREFIX, Change, Snapshot, follow, read

__all__ = ["SERVICES_HELP", "add_services_command", "run_services_command"]


SERVICES_HELP = "list the services registered in etcd (--watch: follow)"


def add_services_command(services: argparse.ArgumentParser) -> None:
    """The arguments of the `services` command (its parser: `commands.add_parser("services", ...)`)."""
    services.add_argument("--etcd", required=True, help="etcd endpoint, e.g. http://etcd:2379")
    services.add_argument("--prefix", default=DEFAULT_PREFIX)
    services.add_argument("--json", action="store_true", help="print the entries (and changes) as JSON")
    services.add_argument("--watch", action="store_true", help="then print each change until interrupted")


def _row(entry: dict[str, Any]) -> str:
    if entry["kind"] == "instance":
        where = entry.get("instance_id", "?")
        state = entry.get("readiness", "?")
    else:
        where, state = "(service key)", "-"
    return f"{entry.get('name', '?'):<30} {entry.get('version', '?'):<12} {state:<5} {entry.get('base_url', '?'):<40} {where}"


def _print_entries(entries: list[dict[str, Any]], *, as_json: bool, indent: int | None) -> None:
    if as_json:
        print(json.dumps(entries, indent=indent), flush=True)
    else:
        for entry in entries:
            print(_row(entry), flush=True)


def _print_change(change: Change, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"type": change.type, "key": change.key, "entry": change.entry}), flush=True)
    elif change.entry is None:
        print(f"- {change.key}", flush=True)
    else:
        print(f"+ {_row(change.entry)}", flush=True)


def run_services_command(args: argparse.Namespace) -> int:
    try:
        if not args.watch:
            _print_entries(read(args.etcd, args.prefix).entries, as_json=args.json, indent=2)
            return 0
        first = True
        for item in follow(args.etcd, args.prefix):
            if isinstance(item, Snapshot):
                if not first:
                    print("etcd was unreachable: registrations read again", file=sys.stderr, flush=True)
                first = False
                _print_entries(
                    item.entries, as_json=args.json, indent=None
                )  # one line: a stream of JSON lines
            else:
                _print_change(item, as_json=args.json)
    except (OSError, ValueError) as error:
        print(f"nexus-template: cannot read {args.etcd}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
