"""v0.2.0, before the update, in the service folder: `python migrations/v0_2_0.py .copier-answers.yml`

- answer `memory_limit_mib` (an integer of MiB) became `memory_limit`, a Kubernetes quantity:
  512 -> "512Mi", 16384 -> "16Gi";
- derived answers (`base_image`, `cpu_limit`, `memory_limit`) equal to what their sources derive become
  `auto`, so that they follow `gpu` and `python_version` from now on. A value that differs was typed
  by someone and is kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

from answers import follow_derived, rename_answer

# the one place the derivation lives (copier runs migrations from the template's checkout)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "extensions"))
from context import AUTO, derived_answers


def mib_to_quantity(mib: int) -> str:
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


if __name__ == "__main__":
    answers_file = Path(sys.argv[1])
    if rename_answer(
        answers_file, "memory_limit_mib", "memory_limit", lambda value: mib_to_quantity(int(value))
    ):
        print(f"migration v0.2.0: memory_limit_mib -> memory_limit in {answers_file}", file=sys.stderr)
    followed = follow_derived(answers_file, derived_answers, AUTO)
    if followed:
        print(f"migration v0.2.0: {', '.join(followed)} -> {AUTO} in {answers_file}", file=sys.stderr)
