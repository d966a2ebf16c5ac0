"""`nexus-template services`: the registrations in etcd as a table or JSON, once or live (`--watch`).

It reaches etcd as the service does: ETCD_USERNAME/ETCD_PASSWORD, ETCD_CA_FILE, ETCD_CERT_FILE/ETCD_KEY_FILE
(from the environment, or the options of the same names; the password is never printed). Only entries that
pass registry.py's checks are listed as registrations; anything else under the prefix is printed apart as
SUSPECT with the reason, never with a readiness. Whatever came from etcd is printed with its control
characters escaped (registry.visible), so a value cannot drive the terminal.

`--watch` prints the registrations, then each change as etcd reports it through its JSON gateway's watch
stream (no polling: a change shows within milliseconds, and none is missed between the read and the watch,
which starts at the read's revision + 1). When etcd goes away it says so and reads again once it is back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from nexus_template.registry import (
    DEFAULT_PREFIX,
    Change,
    Credentials,
    Snapshot,
    follow,
    read,
    redacted,
    visible,
)

__all__ = ["SERVICES_HELP", "add_services_command", "run_services_command"]


SERVICES_HELP = "list the services registered in etcd (--watch: follow)"

# option, environment variable, help
_CREDENTIALS = (
    ("--etcd-username", "ETCD_USERNAME", "etcd user (its role needs read on the prefix)"),
    (
        "--etcd-password",
        "ETCD_PASSWORD",
        "that user's password (prefer the environment variable: ps shows options)",
    ),
    ("--etcd-ca-file", "ETCD_CA_FILE", "CA bundle that signed etcd's certificate (https)"),
    ("--etcd-cert-file", "ETCD_CERT_FILE", "client certificate for mutual TLS (with --etcd-key-file)"),
    ("--etcd-key-file", "ETCD_KEY_FILE", "the client certificate's private key"),
)


def add_services_command(services: argparse.ArgumentParser) -> None:
    """The arguments of the `services` command (its parser: `commands.add_parser("services", ...)`)."""
    services.add_argument("--etcd", required=True, help="etcd endpoint, e.g. http://etcd:2379")
    services.add_argument("--prefix", default=DEFAULT_PREFIX)
    services.add_argument("--json", action="store_true", help="print the entries (and changes) as JSON")
    services.add_argument("--watch", action="store_true", help="then print each change until interrupted")
    for option, variable, meaning in _CREDENTIALS:
        services.add_argument(option, metavar=variable, help=f"{meaning}; default: ${variable}")


def _credentials(args: argparse.Namespace) -> Credentials:
    """The options, each falling back to the service's own environment variable."""
    environment = Credentials.from_environment(os.environ)
    return Credentials(
        username=args.etcd_username or environment.username,
        password=args.etcd_password or environment.password,
        ca_file=args.etcd_ca_file or environment.ca_file,
        cert_file=args.etcd_cert_file or environment.cert_file,
        key_file=args.etcd_key_file or environment.key_file,
    )


def _json(value: object, indent: int | None = None) -> str:
    # json.dumps escapes every control character but DEL (it is ASCII): escape that one too
    return json.dumps(value, indent=indent).replace("\x7f", "\\u007f")


def _row(entry: dict[str, Any]) -> str:
    if entry["kind"] == "suspect":
        return f"SUSPECT {visible(entry['key'])}: {visible(entry['reason'])}"
    if entry["kind"] == "instance":
        where, state = entry["instance_id"], entry["readiness"]
    else:
        where, state = "(service key)", "-"
    columns = f"{entry['name']:<30} {entry['version']:<12} {state:<5} {entry['base_url']:<40} {where}"
    return visible(columns)  # checked printable already; escaped again so no path can print a raw one


def _print_snapshot(snapshot: Snapshot, *, as_json: bool, indent: int | None) -> None:
    """The registrations, then the suspects (kind "suspect" in JSON, so a consumer keeping only kind
    "instance" never routes to one)."""
    everything = [*snapshot.entries, *snapshot.suspects]
    if as_json:
        print(_json(everything, indent), flush=True)
    else:
        for entry in everything:
            print(_row(entry), flush=True)


def _print_change(change: Change, *, as_json: bool) -> None:
    if as_json:
        print(_json({"type": change.type, "key": change.key, "entry": change.entry}), flush=True)
    elif change.entry is None:
        print(f"- {visible(change.key)}", flush=True)
    elif change.type == "suspect":
        print(f"! {_row(change.entry)}", flush=True)
    else:
        print(f"+ {_row(change.entry)}", flush=True)


def run_services_command(args: argparse.Namespace) -> int:
    try:
        credentials = _credentials(args)
        if not args.watch:
            _print_snapshot(
                read(args.etcd, args.prefix, credentials=credentials), as_json=args.json, indent=2
            )
            return 0
        first = True
        for item in follow(args.etcd, args.prefix, credentials=credentials):
            if isinstance(item, Snapshot):
                if not first:
                    print("etcd was unreachable: registrations read again", file=sys.stderr, flush=True)
                first = False
                _print_snapshot(item, as_json=args.json, indent=None)  # one line: a stream of JSON lines
            else:
                _print_change(item, as_json=args.json)
    except (OSError, ValueError) as error:
        print(f"nexus-template: cannot read {redacted(args.etcd)}: {visible(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
