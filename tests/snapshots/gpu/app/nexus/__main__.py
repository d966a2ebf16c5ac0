# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""Platform tools: `python -m app.nexus metadata-schema` prints the JSON Schema of /v1/metadata."""

import argparse
import sys

from app.nexus.metadata import json_schema


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m app.nexus")
    parser.add_argument("command", choices=["metadata-schema"])
    parser.parse_args()
    sys.stdout.write(json_schema())


main()
