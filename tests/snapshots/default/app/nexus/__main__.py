# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""Platform tools, run in the service's folder:

python -m app.nexus metadata-schema   print the JSON Schema of /v1/metadata
python -m app.nexus lock              refresh requirements.lock from the requirement files (uv, network)
python -m app.nexus lock --check      exit 1, saying why, when requirements.lock is out of date (offline)
"""

import argparse
import sys
from pathlib import Path

from app.nexus.locking import lock_problems, write_lock
from app.nexus.metadata import json_schema

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m app.nexus", description=__doc__)
    parser.add_argument("command", choices=["metadata-schema", "lock"])
    parser.add_argument("--check", action="store_true", help="lock: check only, write nothing")
    arguments = parser.parse_args()
    if arguments.command == "metadata-schema":
        sys.stdout.write(json_schema())
        return 0
    if not arguments.check:
        write_lock(ROOT)
    problems = lock_problems(ROOT)
    for problem in problems:
        print(f"requirements.lock: {problem}", file=sys.stderr)
    return 1 if problems else 0


sys.exit(main())
