"""Docs that list facts are tested against the facts' sources."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import jinja2
import pytest
import yaml
from nexus_platform._config.settings import variable_names
from nexus_platform._http.exchange import Outcome
from nexus_platform._probes.metadata import json_schema
from nexus_platform._registration.role import service_ranges
from nexus_platform.gateway import GatewaySettings

from devtools.render import ROOT, render
from extensions.context import deployment_facts
from tests import settings_docs
from tests.extension_modules import load_extension


def questions() -> dict[str, dict]:
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    return {name: spec for name, spec in config.items() if not name.startswith("_")}


def documented_rows(doc: str) -> dict[str, list[str]]:
    rows = {}
    for line in (ROOT / "docs" / doc).read_text().splitlines():
        match = re.match(r"^\| `(\w+)` \|(.*)\|$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def test_every_question_is_documented_with_its_type() -> None:
    rows = documented_rows("answers.md")
    assert list(rows) == list(questions()), "docs/answers.md lists other questions, or in another order"
    for name, spec in questions().items():
        assert rows[name][0] == spec["type"], name


def test_documented_defaults_are_copier_yml_defaults() -> None:
    """The default column of docs/answers.md, for every question whose default is a plain value."""
    rows = documented_rows("answers.md")
    for name, spec in questions().items():
        default = spec.get("default")
        if default is None or "{{" in str(default):
            continue  # required, or derived (described in words)
        text = str(default).lower() if isinstance(default, bool) else str(default)
        assert f"`{text}`" in rows[name][1], f"docs/answers.md: default of {name} is not `{text}`"


def test_readme_lists_every_question() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in questions() if f"`{name}`" not in readme]
    assert not missing


def test_published_metadata_schema_is_what_the_code_produces() -> None:
    assert json_schema() == (ROOT / "docs" / "metadata.schema.json").read_text(), (
        "refresh docs/metadata.schema.json: .venv/bin/python -m nexus_platform metadata-schema > docs/metadata.schema.json"
    )


def test_the_gateway_docs_list_every_gateway_setting_with_its_default() -> None:
    """docs/gateway.md's table is written for a reader (shorter than the descriptions): its variables and
    defaults are GatewaySettings'."""
    documented = dict(
        re.findall(
            r"^\| `(GATEWAY_[A-Z_]+)` \| ([^|]+?) \|", (ROOT / "docs" / "gateway.md").read_text(), re.M
        )
    )
    defaults = GatewaySettings()
    assert list(documented) == variable_names(GatewaySettings)
    for name, shown in documented.items():
        value = getattr(defaults, name.lower())
        assert shown == (
            "empty" if value == "" else f"`{value:g}`" if isinstance(value, float) else f"`{value}`"
        )


def test_the_documented_outcomes_of_an_access_line_are_the_codes() -> None:
    """docs/service-api.md names every `outcome` an access line can carry, and no other."""
    text = (ROOT / "docs" / "service-api.md").read_text()
    paragraph = text[text.index("`outcome` says why:") :].split("\n\n", 1)[0]
    assert set(re.findall(r"`([a-z_]+)`", paragraph)) - {"outcome"} == set(typing.get_args(Outcome))


def test_every_variable_of_a_full_featured_service_is_in_the_docs(rendered) -> None:
    """Each variable of a service with GPUs or registration is explained in docs/ (not only in its README)."""
    docs = "\n".join(path.read_text() for path in (ROOT / "docs").glob("*.md"))
    for name in ("gpu", "registry"):
        variables = re.findall(
            r"^([A-Z][A-Z0-9_]*)=", (rendered(name) / ".env.example").read_text(), re.MULTILINE
        )
        missing = [
            variable for variable in variables if variable != "EXAMPLE_PREFIX" and f"`{variable}`" not in docs
        ]
        assert not missing, f"docs/ never mentions {missing}"


def test_the_shutdown_timings_and_user_in_the_docs_are_the_extensions_values() -> None:
    """docs/deploy.md and docs/operations.md quote the values extensions/context.py renders everywhere."""
    facts = deployment_facts()
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert f"`stop_grace_period: {facts['stop_grace_period_seconds']}s`" in deploy
    assert f"`terminationGracePeriodSeconds: {facts['termination_grace_period_seconds']}`" in deploy
    assert f"`preStop: sleep {facts['pre_stop_seconds']}`" in deploy
    assert f"uid:gid `{facts['run_as_uid']}:{facts['run_as_uid']}`" in deploy
    assert f"`DRAIN_SECONDS` ({facts['drain_seconds']})" in deploy
    assert f"`SHUTDOWN_GRACE_SECONDS` ({facts['shutdown_grace_seconds']})" in deploy
    assert f"| `terminationGracePeriodSeconds` | {facts['termination_grace_period_seconds']} |" in operations
    assert f"| `stop_grace_period` | {facts['stop_grace_period_seconds']}s |" in operations


@pytest.fixture(scope="module")
def full_service(template_repo, tmp_path_factory) -> Path:
    """A service with every optional setting (GPUs and registration)."""
    return render(template_repo, tmp_path_factory.mktemp("full") / "full", settings_docs.full_answers())


def test_published_settings_tables_are_what_the_code_produces(full_service: Path) -> None:
    """Each generated table of docs/*.md is `python -m nexus_platform settings` for a service with every
    feature."""
    pages = {page.name: page.read_text() for page in sorted((ROOT / "docs").glob("*.md"))}
    tables = {name: settings_docs.docs_blocks(text) for name, text in pages.items()}
    assert {name for name, blocks in tables.items() if blocks} >= {
        "operations.md", "registration.md", "service-api.md"
    }  # fmt: skip
    for name, blocks in tables.items():
        for start, table in blocks.items():
            assert settings_docs.current_block(pages[name], start, settings_docs.DOCS_END, name) == table, (
                f"docs/{name}: the table after {start} differs from the settings in the code; "
                "run `make settings-docs` (docs/settings.md)"
            )


def test_the_merged_settings_render_a_combination_no_variant_has(full_service: Path) -> None:
    """The platform blocks, merged from services with GPUs or with registration, render one with both."""
    answers = yaml.safe_load((full_service / ".copier-answers.yml").read_text())
    load_extension("context").derive(answers)  # the derived values copier's context hook adds
    environment = jinja2.Environment(  # noqa: S701 - as copier renders: .env and Markdown, not HTML
        keep_trailing_newline=True, undefined=jinja2.StrictUndefined
    )
    for path, start, end, kind in settings_docs.TEMPLATE_BLOCKS:
        merged = settings_docs.current_block(path.read_text(), start, end, path.name)
        expected = settings_docs.run_settings(full_service, kind)
        assert environment.from_string(merged).render(answers) == expected, path.name


def test_template_settings_blocks_are_what_the_code_produces() -> None:
    """The platform parts of .env.example.jinja and README.md.jinja are the merged outputs for each
    feature set."""
    generated = settings_docs.template_blocks()
    for path, start, end, kind in settings_docs.TEMPLATE_BLOCKS:
        published = settings_docs.current_block(path.read_text(), start, end, path.name)
        assert published == generated[kind], (
            f"{path.relative_to(ROOT)} differs from the settings in the code; run `make settings-docs`"
        )


# Phrases that point at things a reader of the repository cannot open (the requirements seed, the engineers'
# notes, issue threads) or at a moving target instead of a release.
_OUTSIDE_REFERENCES = re.compile(
    r"\bthe seed\b|seed's|field.notes|closing note|blob/main|tree/main", re.IGNORECASE
)


def test_the_docs_stand_alone() -> None:
    published = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
    published += sorted((ROOT / "template").rglob("*.md*")) + sorted((ROOT / "migrations").glob("*.md"))
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in published
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _OUTSIDE_REFERENCES.search(line)
    ]
    assert not found, "\n".join(found)


def test_a_rendered_readme_links_to_the_docs_of_its_own_release(rendered, template_repo) -> None:
    """Rendered from a local template (no web address to link), the README links that checkout's docs;
    the links of a template at a web address (its release's `/blob/<ref>/docs`) are tests/test_release.py's."""
    service = rendered("default")
    links = re.findall(r"\]\(([a-z]+://[^)]+/docs/[^)]+)\)", (service / "README.md").read_text())
    assert links, "the README links to no template doc"
    for link in links:
        assert link.startswith(f"{template_repo.as_uri()}/docs/"), link
        assert (template_repo / "docs" / link.split("/docs/", 1)[1].split("#")[0]).is_file(), link


def test_the_documented_etcd_role_is_the_one_the_platform_grants() -> None:
    """docs/registration.md's `etcdctl role grant-permission` lines are nexus_platform's service_ranges."""
    text = (ROOT / "docs" / "registration.md").read_text()
    documented = []
    for prefix, written in re.findall(r'grant-permission "\$S" readwrite (--prefix=true )?"([^"]+)"', text):
        key = written.replace("${S}", "llm-proxy").replace("$S", "llm-proxy")
        documented.append((key, key[:-1] + chr(ord(key[-1]) + 1) if prefix else ""))
    assert documented == service_ranges("llm-proxy", "/nexus/services/", "traefik")
