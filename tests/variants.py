"""One Jinja file from the renders of several answer sets: what every answer set renders is written as is,
what only some do is wrapped in the conditions that switch it on. Used by `make lock` and
`make settings-docs`, which render the canonical answer sets and merge their output back into the template.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["appended_if", "merged_jinja"]


def appended_if(text: str, condition: str, block: str) -> str:
    """`text` followed by `block` rendered only when `condition` holds; both end with a newline."""
    return (
        text.removesuffix("\n") + f"{{%- if {condition} %}}\n" + block.removesuffix("\n") + "{%- endif %}\n"
    )


def _units(text: str, key: Callable[[str], str | None]) -> list[tuple[str, str]]:
    """(key, lines) pairs: each unit runs up to and including the next line that has a key."""
    units, pending = [], ""
    for line in text.splitlines(keepends=True):
        pending += line
        name = key(line.rstrip("\n"))
        if name is not None:
            units.append((name, pending))
            pending = ""
    if pending:
        raise ValueError(f"lines without a key at the end: {pending!r}")
    return units


def merged_jinja(
    outputs: dict[str | None, str], key: Callable[[str], str | None], everything: str | None = None
) -> str:
    """Merge per-answer-set outputs (condition -> text; None: the answer set every other one extends,
    first) into Jinja. Units are matched by `key`; a unit missing from the base is placed after the unit
    that precedes it in its own output, under its conditions (one `if` per run of units under the same
    ones). A unit rendered differently by two answer sets is an error. `everything`, the output of an
    answer set with every condition on, fixes the order where answer sets would leave it open (two
    answer sets adding units at the same place)."""
    order: list[str] = []
    blocks: dict[str, str] = {}
    conditions: dict[str, list[str]] = {}
    for condition, text in outputs.items():
        previous: str | None = None
        for name, block in _units(text, key):
            if name not in blocks:
                order.insert(order.index(previous) + 1 if previous is not None else 0, name)
                blocks[name] = block
                conditions[name] = [condition] if condition else []
            elif blocks[name] != block:
                raise SystemExit(f"{condition} renders {name} differently: {block!r} vs {blocks[name]!r}")
            elif condition and conditions[name]:
                conditions[name].append(condition)
            previous = name
    if everything is not None:
        reference = _units(everything, key)
        if sorted(reference) != sorted(blocks.items()):
            raise SystemExit("the answer set with every condition on renders other units than the others")
        order = [name for name, _ in reference]
    merged, run, run_condition = "", "", ""
    for name in order:
        joined = " or ".join(conditions[name])
        if run and joined != run_condition:
            merged, run = appended_if(merged, run_condition, run), ""
        if joined:
            run, run_condition = run + blocks[name], joined
        else:
            merged += blocks[name]
    return appended_if(merged, run_condition, run) if run else merged
