"""Bad answers: one clear line naming the question and the rule, no traceback, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devtools.render import load_answers

COPIER = str(Path(sys.executable).with_name("copier"))

BAD_ANSWERS = [
    ("port", "80"),
    ("port", "70000"),
    ("port", "abc"),
    ("service_name", "My Service"),
    ("service_name", "-x"),
    ("service_name", "a"),
    ("service_name", "a" * 60),
    ("service_name", "../etc"),
    ("service_name", ""),
    ("service_name", "double--hyphen"),
    ("base_image", "python:3.11 slim"),
    ("base_image", "UPPER/case:tag"),
    ("service_version", "1.0"),
    ("python_version", "3.9"),
    ("capabilities", "chat.completions"),
    ("capabilities", '["Chat Completions"]'),
    ("capabilities", '["embeddings", "embeddings"]'),
    ("owner", "Media Team"),
    ("service_description", ""),
    ("cpu_limit", "lots"),
    ("memory_limit", "16"),
    ("memory_limit", "32Mi"),
    ("memory_limit", "1.5Gi"),
    # a monorepo root's (layout=monorepo-root): services beside the root's own files, or in .git
    ("services_folder", "."),
    ("services_folder", "services/."),
    ("services_folder", "../services"),
    ("services_folder", ".github"),
    ("services_folder", "/srv/services"),
    ("services_folder", "--help"),  # it goes on nexus-template's command line in template-update.yml
    ("services_folder", "services\n"),
]


def copier_copy(template: Path, destination: Path, *data: str) -> subprocess.CompletedProcess[str]:
    """`copier copy` as users run it; each `data` item is NAME=VALUE or an option such as --data-file."""
    arguments = [part for item in data for part in ((item,) if item.startswith("--") else ("--data", item))]
    return subprocess.run(
        [
            COPIER,
            "copy",
            "--trust",
            "--defaults",
            "--quiet",
            "--vcs-ref",
            "HEAD",
            *arguments,
            str(template),
            str(destination),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("question", "value"), BAD_ANSWERS, ids=[f"{q}={v[:20]}" for q, v in BAD_ANSWERS])
def test_a_bad_answer_is_refused_with_one_line(
    template_repo: Path, tmp_path: Path, question: str, value: str
) -> None:
    destination = tmp_path / "service"
    extra = [] if question == "service_name" else ["service_name=ok-service"]
    if question == "services_folder":
        extra.append("layout=monorepo-root")
    result = copier_copy(template_repo, destination, *extra, f"{question}={value}")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip() and "DirtyLocalWarning" not in line]
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert f"question '{question}'" in lines[0]
    assert "Nothing was written" in lines[0]
    assert not destination.exists()


def test_a_missing_service_name_is_refused(template_repo: Path, tmp_path: Path) -> None:
    result = copier_copy(template_repo, tmp_path / "service")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "service_name" in result.stderr
    assert not (tmp_path / "service").exists()


@pytest.mark.parametrize("name", ["default", "custom"])
def test_an_answers_file_renders_through_the_cli(template_repo: Path, tmp_path: Path, name: str) -> None:
    answers_file = tmp_path / "answers.yml"
    answers_file.write_text(yaml.safe_dump(load_answers(name)))
    result = copier_copy(template_repo, tmp_path / "service", f"--data-file={answers_file}")
    assert result.returncode == 0, result.stderr
    recorded = yaml.safe_load((tmp_path / "service" / ".copier-answers.yml").read_text())
    # the service's facts only seed release/service.env (the service's own), they are not recorded
    seeds = {"service_version", "service_description", "owner", "capabilities"}
    expected = {key: value for key, value in load_answers(name).items() if key not in seeds}
    assert {key: recorded.get(key) for key in expected} == expected
    assert not seeds & set(recorded)
