"""Platform tools, run in the service's folder:

python -m nexus_platform metadata-schema   print the JSON Schema of /v1/metadata
python -m nexus_platform lock              refresh requirements.lock from the requirement files (uv, network)
python -m nexus_platform lock --check      exit 1, saying why, when requirements.lock is out of date (offline)
python -m nexus_platform settings          print the platform settings' documentation (--format env|markdown):
                                           the platform part of .env.example, or the README's settings table,
                                           for a service with --features (gpu,registration; default: none)
python -m nexus_platform etcd-init --service NAME
                                           set up the registry etcd (compose's etcd-init): auth on, a role
                                           that writes NAME's keys only, its user (docs/registration.md)
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from nexus_platform._config.docs import (
    FEATURES,
    UndocumentedSettings,
    env_block,
    markdown_table,
    platform_settings,
)
from nexus_platform._locking import lock_problems, write_lock
from nexus_platform._probes.metadata import json_schema


def _settings(arguments: argparse.Namespace) -> int:
    try:
        features = [name.strip() for name in arguments.features.split(",") if name.strip()]
        unknown = set(features) - set(FEATURES)
        if unknown:
            print(
                f"--features: no such feature {', '.join(sorted(unknown))} (known: {', '.join(FEATURES)})",
                file=sys.stderr,
            )
            return 2
        settings = platform_settings(features=features)
    except UndocumentedSettings as error:
        print(error, file=sys.stderr)
        return 1
    if arguments.format == "env":
        if arguments.groups or arguments.variables:
            print("--groups and --variables select rows of --format markdown only", file=sys.stderr)
            return 2
        sys.stdout.write(env_block(settings, arguments.answer_defaults))
        return 0
    groups, variables = (
        [name.strip() for name in names.split(",") if name.strip()]
        for names in (arguments.groups, arguments.variables)
    )
    try:
        sys.stdout.write(markdown_table(settings, arguments.answer_defaults, groups, variables))
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nexus_platform",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["metadata-schema", "lock", "settings", "etcd-init"])
    parser.add_argument("--check", action="store_true", help="lock: check only, write nothing")
    parser.add_argument("--format", choices=["env", "markdown"], default="env", help="settings: the output")
    parser.add_argument(
        "--answer-defaults",
        choices=["values", "jinja", "words"],
        default="values",
        help="settings: defaults that come from a template answer as this service's value, as Jinja, or in words",
    )
    parser.add_argument(
        "--features", default="", help="settings: the optional features of the service (comma-separated)"
    )
    parser.add_argument(
        "--groups", default="", help="settings --format markdown: only these groups (comma-separated)"
    )
    parser.add_argument(
        "--variables", default="", help="settings --format markdown: and these variables (comma-separated)"
    )
    parser.add_argument("--service", default="", help="etcd-init: the service's name (SERVICE_NAME wins)")
    arguments = parser.parse_args()
    if arguments.command == "etcd-init":
        from nexus_platform._registration.role import etcd_init  # httpx: only this command needs it

        return etcd_init(arguments.service)
    if arguments.command == "metadata-schema":
        sys.stdout.write(json_schema())
        return 0
    if arguments.command == "settings":
        return _settings(arguments)
    if not arguments.check:
        try:
            write_lock(Path.cwd())
        except subprocess.CalledProcessError as error:
            print(
                f"requirements.lock: cannot resolve the requirement files:\n{error.stderr}", file=sys.stderr
            )
            if "nexus-ai-platform" in error.stderr and not os.environ.get("PIP_FIND_LINKS"):
                print(
                    "requirements.lock: no index has this nexus-ai-platform release: set PIP_FIND_LINKS to a "
                    'folder with its wheel (`make wheel` in nexus-template; README.md, "Setup")',
                    file=sys.stderr,
                )
            return 1
    problems = lock_problems(Path.cwd())
    for problem in problems:
        print(f"requirements.lock: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
