"""v0.2.0: answer `memory_limit_mib` (an integer of MiB) became `memory_limit`, a Kubernetes quantity.

512 -> "512Mi", 16384 -> "16Gi". Runs before the update, in the service folder:
    python migrations/v0_2_0.py .copier-answers.yml
"""

from __future__ import annotations

import sys
from pathlib import Path

from answers import rename_answer


def mib_to_quantity(mib: int) -> str:
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


if __name__ == "__main__":
    answers_file = Path(sys.argv[1])
    if rename_answer(
        answers_file, "memory_limit_mib", "memory_limit", lambda value: mib_to_quantity(int(value))
    ):
        print(f"migration v0.2.0: memory_limit_mib -> memory_limit in {answers_file}", file=sys.stderr)
