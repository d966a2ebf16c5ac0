"""tests/variants.py: per-answer-set outputs merged into one Jinja file that renders each of them back."""

from __future__ import annotations

import itertools

import jinja2
import pytest

from tests.variants import merged_jinja

_OUTPUTS = {
    None: "# --- Base\nA=1\nB=2\n",
    "gpu": "# --- Base\nA=1\n# GPUs\nG=1\nB=2\n",
    "etcd": "# --- Base\nA=1\nB=2\n\n# --- Etcd\nE=1\nF=2\n",
}


def _key(line: str) -> str | None:
    return (
        None
        if (line.startswith("# ") and not line.startswith("# ---")) or not line
        else line.split("=", maxsplit=1)[0]
    )


@pytest.mark.parametrize(("gpu", "etcd"), list(itertools.product([False, True], repeat=2)))
def test_the_merge_renders_every_combination_of_conditions(gpu: bool, etcd: bool) -> None:
    merged = merged_jinja(_OUTPUTS, _key)
    environment = jinja2.Environment(keep_trailing_newline=True)  # noqa: S701 - as copier renders: not HTML
    expected = "# --- Base\nA=1\n" + ("# GPUs\nG=1\n" if gpu else "") + "B=2\n"
    expected += "\n# --- Etcd\nE=1\nF=2\n" if etcd else ""
    assert environment.from_string(merged).render(gpu=gpu, etcd=etcd) == expected
    assert merged.count("{%- if etcd %}") == 1, "one `if` per run of units under the same condition"


def test_the_answer_set_with_everything_orders_units_two_answer_sets_add_at_one_place() -> None:
    outputs = {None: "A=1\n", "gpu": "A=1\nG=1\n", "etcd": "A=1\nE=1\n"}
    merged = merged_jinja(outputs, _key, everything="A=1\nG=1\nE=1\n")
    environment = jinja2.Environment(keep_trailing_newline=True)  # noqa: S701 - as copier renders: not HTML
    assert environment.from_string(merged).render(gpu=True, etcd=True) == "A=1\nG=1\nE=1\n"
    with pytest.raises(SystemExit, match="every condition on renders other units"):
        merged_jinja(outputs, _key, everything="A=1\nG=1\n")


def test_a_unit_two_answer_sets_render_differently_stops_the_merge() -> None:
    with pytest.raises(SystemExit, match="gpu renders B differently"):
        merged_jinja({None: "A=1\nB=2\n", "gpu": "A=1\nB=3\n"}, _key)
