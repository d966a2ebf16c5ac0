"""The tools a rendered service brings: release/service.env that a shell and the platform read alike, the
image build script that passes it on as CI does, the README's endpoints as the service offers them, and the
ecosystem's configuration (Renovate, pre-commit). The image build itself: tests/test_container.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from nexus_platform._config.facts import FactsError, parse_facts
from nexus_platform._rules import OPENAI_CAPABILITIES

from devtools.render import answer_sets, load_answers, render

# what a shell makes of quotes, $, backquotes and backslashes must be what the platform reads
HOSTILE = """It's "the" $HOME of `echo` and C:\\ 100% (a\\b)"""
SHELL_FACTS = (
    "set -eu; . release/service.env; "
    'printf "%s\\0" "$SERVICE_VERSION" "$SERVICE_DESCRIPTION" "$SERVICE_OWNER" "$SERVICE_CAPABILITIES"'
)


def sourced(service: Path) -> list[str]:
    """The facts as bash reads release/service.env (sourced, as README.md says it can be)."""
    result = subprocess.run(
        ["bash", "-c", SHELL_FACTS], cwd=service, capture_output=True, text=True, timeout=30, check=True
    )
    return result.stdout.split("\0")[:-1]


@pytest.mark.parametrize("name", ["default", "ai-local"])
def test_release_service_env_is_shell_that_reads_as_the_platform_reads_it(rendered, name: str) -> None:
    service = rendered(name)
    facts = parse_facts((service / "release" / "service.env").read_text())
    assert sourced(service) == [
        facts.service_version,
        facts.service_description,
        facts.service_owner,
        ",".join(facts.service_capabilities),
    ]


def test_any_description_is_quoted_so_that_a_shell_reads_it_as_written(template_repo, tmp_path: Path) -> None:
    service = render(
        template_repo, tmp_path / "svc", {**load_answers("default"), "service_description": HOSTILE}
    )
    assert parse_facts((service / "release" / "service.env").read_text()).service_description == HOSTILE
    assert sourced(service)[1] == HOSTILE


FACTS = "SERVICE_VERSION=1.2.3\nSERVICE_OWNER=voice-team\nSERVICE_DESCRIPTION={}\n"


@pytest.mark.parametrize(
    ("value", "read"),
    [
        ("Speech for everyone", "Speech for everyone"),  # a service made before the quoting keeps its file
        ('"Speech for everyone"', "Speech for everyone"),
        ("'Speech \"for\" $everyone'", 'Speech "for" $everyone'),
        ('"\\"Speech\\" at \\$1 \\`now\\` C:\\\\ a\\b"', '"Speech" at $1 `now` C:\\ a\\b'),
    ],
    ids=["unquoted", "double", "single", "escapes"],
)
def test_the_platform_reads_quoted_and_unquoted_values(value: str, read: str) -> None:
    assert parse_facts(FACTS.format(value)).service_description == read


@pytest.mark.parametrize(
    "value",
    ['"Speech', '"Speech "for" all"', '"Speech $HOME"', '"Speech `id`"', '"Speech\\"', "'It's'"],
    ids=["unclosed", "inner quote", "expansion", "command", "escaped end", "single inside single"],
)
def test_a_value_a_shell_would_read_otherwise_is_refused_naming_its_line(value: str) -> None:
    with pytest.raises(FactsError) as refused:
        parse_facts(FACTS.format(value))
    assert str(refused.value).startswith(
        "release/service.env:3: SERVICE_DESCRIPTION must be quoted as a shell"
    )


def _facts_command(service: Path, *args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SERVICE_")}
    return subprocess.run(
        [sys.executable, "-m", "nexus_platform", "facts", *args],
        cwd=service,
        env={**clean, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_facts_command_prints_the_build_arguments_and_checks_them(tmp_path: Path) -> None:
    """What image/build-like-ci.sh passes to the build, and what the Dockerfile checks them with."""
    (tmp_path / "release").mkdir()
    (tmp_path / "release" / "service.env").write_text(FACTS.format('"Says \\"hi\\""'))
    printed = _facts_command(tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert (
        printed.stdout == 'SERVICE_VERSION=1.2.3\nSERVICE_DESCRIPTION=Says "hi"\nSERVICE_OWNER=voice-team\n'
    )
    assert _facts_command(tmp_path, "--check").returncode == 0, "no build arguments: nothing contradicts"
    assert _facts_command(tmp_path, "--check", SERVICE_DESCRIPTION='Says "hi"').returncode == 0
    differs = _facts_command(tmp_path, "--check", SERVICE_VERSION="1.2.4")
    assert (differs.returncode, differs.stderr) == (
        1,
        "build argument SERVICE_VERSION='1.2.4' differs from release/service.env ('1.2.3')\n",
    )
    (tmp_path / "release" / "service.env").write_text(FACTS.format('"open'))
    broken = _facts_command(tmp_path)
    assert broken.returncode == 1
    assert broken.stderr.startswith("release/service.env:3: SERVICE_DESCRIPTION must be quoted")


def test_the_image_script_is_posix_shell_and_executable(rendered) -> None:
    script = rendered("default") / "image" / "build-like-ci.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True, check=False).returncode == 0
    assert "nexus/echo-service:${version}" in script.read_text()


@pytest.mark.parametrize("name", answer_sets())
def test_the_readme_lists_the_openai_routes_the_service_offers_and_no_other(rendered, name: str) -> None:
    service = rendered(name)
    readme = (service / "README.md").read_text()
    endpoints = readme.split("## Endpoints", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `POST (/v1/[^`]+)` \|", endpoints, re.MULTILINE)) - {"/v1/echo"}
    # what it was made with (an answer, or the default suggested from its name)
    offered = parse_facts((service / "release" / "service.env").read_text()).service_capabilities
    assert listed == {capability.path for key, capability in OPENAI_CAPABILITIES.items() if key in offered}
    example = readme.split("## Add an endpoint", 1)[1].split("\n## ", 1)[0]
    assert "app/capabilities/<module>.py" in example
    assert not {capability.path for capability in OPENAI_CAPABILITIES.values()} & set(
        re.findall(r'@post\("([^"]+)"', example)
    ), "an OpenAI capability is a module, never a hand-written route"


def test_renovate_covers_the_requirement_files_the_lock_the_platform_pin_and_the_actions(rendered) -> None:
    service = rendered("default")
    config = json.loads((service / "renovate.json").read_text())
    patterns = [
        re.compile(pattern.strip("/")) for pattern in config["pip_requirements"]["managerFilePatterns"]
    ]
    files = sorted(path.name for path in service.glob("requirements*"))
    assert files == [
        "requirements-dev.txt",
        "requirements-service.txt",
        "requirements.lock",
        "requirements.txt",
    ]
    assert all(any(pattern.search(name) for pattern in patterns) for name in files)
    assert "nexus-ai-platform" in (service / "requirements.txt").read_text()
    rules = {rule["groupName"]: rule for rule in config["packageRules"]}
    assert rules["nexus-ai-platform"]["matchPackageNames"] == ["nexus-ai-platform"]
    assert rules["github actions"]["matchManagers"] == ["github-actions"]
    assert "helpers:pinGitHubActionDigests" in config["extends"]
    # the digests Renovate moves: every action of every workflow is pinned by commit
    for workflow in (service / ".github" / "workflows").glob("*.yml"):
        for action in re.findall(r"uses: (\S+)", workflow.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), f"{workflow.name}: {action}"


def test_pre_commit_runs_the_checks_ci_runs_with_the_services_own_tools(rendered) -> None:
    service = rendered("default")
    config = yaml.safe_load((service / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert [repo["repo"] for repo in config["repos"]] == ["local"], "the versions of requirements-dev.txt"
    assert hooks["ruff-check"]["entry"].startswith(".venv/bin/ruff check")
    assert hooks["ruff-format"]["entry"].startswith(".venv/bin/ruff format")
    assert hooks["mypy"]["entry"] == ".venv/bin/mypy"
    assert hooks["mypy"]["pass_filenames"] is False, "pyproject.toml's files, as CI checks them"
    ci = (service / ".github" / "workflows" / "ci.yml").read_text()
    assert "ruff check ." in ci
    assert "run: mypy" in ci
    pre_commit = shutil.which("pre-commit") or str(Path(sys.executable).with_name("pre-commit"))
    if not Path(pre_commit).exists():
        pytest.skip("pre-commit is not installed: its schema check of the file did not run")
    validated = subprocess.run(
        [pre_commit, "validate-config", ".pre-commit-config.yaml"],
        cwd=service,
        capture_output=True,
        text=True,
        check=False,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
