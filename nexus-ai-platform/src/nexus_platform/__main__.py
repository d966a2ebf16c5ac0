"""Platform tools, run in the service's folder:

python -m nexus_platform metadata-schema   print the JSON Schema of /v1/metadata
python -m nexus_platform lock              refresh requirements.lock from the requirement files (uv, network)
python -m nexus_platform lock --check      exit 1, saying why, when requirements.lock is out of date (offline)
python -m nexus_platform settings          print the platform settings' documentation (--format env|markdown):
                                           the platform part of .env.example, or the README's settings table,
                                           for a service with --features (gpu,registration; default: none);
                                           --app (in a service's folder): that service's, its own settings
                                           (ServiceSpec.settings, from their msgspec.Meta descriptions) included
python -m nexus_platform facts             print the image's build arguments, as this library reads release/service.env
                                           (KEY=value lines, unquoted: image/build-like-ci.sh passes them)
python -m nexus_platform facts --check     exit 1, naming it, when a SERVICE_VERSION, SERVICE_DESCRIPTION or
                                           SERVICE_OWNER in the environment differs from the file (the Dockerfile)
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
    SERVICE_HEADER,
    Setting,
    UndocumentedSettings,
    env_block,
    markdown_table,
    own_settings,
    platform_settings,
    service_env_lines,
    service_settings,
)
from nexus_platform._config.facts import FactsError, read_facts
from nexus_platform._locking import lock_problems, write_lock
from nexus_platform._probes.metadata import json_schema


def _app_settings(module: str) -> tuple[list[Setting], list[Setting]]:
    """The platform settings of the service whose app/main.py is `module` (its features and defaults), and
    its own."""
    from nexus_platform.testing._service import load_service  # the app's imports: only --app needs them

    sys.path.insert(0, str(Path.cwd()))  # the service's folder, where `python -m nexus_platform` runs
    service = load_service(module)
    return service_settings(service.identity), own_settings(service.spec.settings)


def _features(arguments: argparse.Namespace) -> list[str] | None:
    """The --features asked for; None (having said why) where they are not a known feature or --app's."""
    features = [name.strip() for name in arguments.features.split(",") if name.strip()]
    unknown = set(features) - set(FEATURES)
    if unknown:
        print(
            f"--features: no such feature {', '.join(sorted(unknown))} (known: {', '.join(FEATURES)})",
            file=sys.stderr,
        )
        return None
    if arguments.app and features:
        print("--features: with --app, the service's own features are documented", file=sys.stderr)
        return None
    return features


def _settings(arguments: argparse.Namespace) -> int:
    own: list[Setting] = []
    features = _features(arguments)
    if features is None:
        return 2
    try:
        if arguments.app:
            settings, own = _app_settings(arguments.app)
        else:
            settings = platform_settings(features=features)
    except UndocumentedSettings as error:
        print(error, file=sys.stderr)
        return 1
    if arguments.format == "env":
        if arguments.groups or arguments.variables:
            print("--groups and --variables select rows of --format markdown only", file=sys.stderr)
            return 2
        sys.stdout.write(env_block(settings, arguments.answer_defaults))
        if arguments.app:  # the service's part of .env.example, under its line
            lines = [SERVICE_HEADER, *(line for setting in own for line in service_env_lines(setting))]
            sys.stdout.write("\n" + "\n".join(lines) + "\n")
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
    if arguments.app:  # the README's second table: the service's own settings
        sys.stdout.write("\n" + markdown_table(own))
    return 0


# the facts the image is labelled with (the Dockerfile's build arguments of the same names)
BUILD_FACTS = ("SERVICE_VERSION", "SERVICE_DESCRIPTION", "SERVICE_OWNER")


def _facts(arguments: argparse.Namespace) -> int:
    try:
        facts = read_facts(Path(arguments.file))
    except FactsError as error:
        print(error, file=sys.stderr)
        return 1
    values = {name: getattr(facts, name.lower()) for name in BUILD_FACTS}
    if not arguments.check:
        sys.stdout.write("".join(f"{name}={value}\n" for name, value in values.items()))
        return 0
    for name, value in values.items():
        given = os.environ.get(name, "")
        # empty: the build was not given it (the label stays empty), which contradicts nothing
        if given and given != value:
            print(
                f"build argument {name}={given!r} differs from {arguments.file} ({value!r})", file=sys.stderr
            )
            return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nexus_platform",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["metadata-schema", "lock", "settings", "facts", "etcd-init"])
    parser.add_argument(
        "--check",
        action="store_true",
        help="lock, facts: check only (facts: the build arguments in the environment)",
    )
    parser.add_argument(
        "--file",
        default="release/service.env",
        help="facts: the service's facts (default: release/service.env)",
    )
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
    parser.add_argument(
        "--app",
        nargs="?",
        const="app.main",
        default="",
        metavar="MODULE",
        help="settings: the service whose app/main.py is MODULE (default app.main), run in its folder",
    )
    parser.add_argument("--service", default="", help="etcd-init: the service's name (SERVICE_NAME wins)")
    parser.add_argument(
        "--gateway",
        action="store_true",
        help="etcd-init: the service is a gateway: it also reads every registration",
    )
    arguments = parser.parse_args()
    if arguments.command == "etcd-init":
        from nexus_platform._registration.role import etcd_init  # httpx: only this command needs it

        return etcd_init(arguments.service, gateway=arguments.gateway)
    if arguments.command == "metadata-schema":
        sys.stdout.write(json_schema())
        return 0
    if arguments.command == "settings":
        return _settings(arguments)
    if arguments.command == "facts":
        return _facts(arguments)
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
