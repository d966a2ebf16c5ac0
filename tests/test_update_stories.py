"""Update stories on real template histories: each one lost work or stopped a fleet before update safety.

They drive `nexus-template` through its CLI and look only at files and git, so the same story can be
run against any version of the tool.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from devtools.render import git, run_python, update
from nexus_template.cli import main as cli
from nexus_template.updating import UpdateResult, table
from tests.edits import PLATFORM_DOCSTRING, edit_file
from tests.histories import TemplateHistory, answers, append_line, commit_all, generate, status

COMPOSE = "template/{{ compose_file }}.jinja"
K8S = "template/{% if kubernetes %}deploy{% endif %}/kubernetes"


def update_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    """Run the CLI with --json; (exit code, report)."""
    code = cli([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def conflicting_edit(service: Path) -> None:
    checks = service / "app/__main__.py"
    edit_file(checks, (PLATFORM_DOCSTRING, '"""Entrypoint, tuned for our backend."""'))


def release_conflicting_change(history: TemplateHistory, version: str) -> None:
    history.replace(
        "template/app/__main__.py", PLATFORM_DOCSTRING, f'"""Production entrypoint ({version})."""'
    )
    history.release(version)


# --- 1. a release that renames or removes a file the service edited ---------------------------------


@pytest.mark.parametrize(
    "story",  # (the file the service edits, the release's change, the file's new name)
    [
        (
            "docker-compose.greeter.yml",
            lambda h: h.replace(
                "extensions/context.py",
                '"compose_file": f"docker-compose.{service_name}.yml"',
                '"compose_file": f"compose.{service_name}.yml"',
            ),
            "compose.greeter.yml",
        ),
        (
            "deploy/kubernetes/service.yaml",
            lambda h: h.rename(f"{K8S}/service.yaml.jinja", f"{K8S}/svc.yaml.jinja"),
            "deploy/kubernetes/svc.yaml",
        ),
        ("app/healthcheck.py", lambda h: h.remove("template/app/healthcheck.py.jinja"), None),
    ],
    ids=["compose-renamed", "kubernetes-service-renamed", "healthcheck-removed"],
)
def test_an_edited_file_the_release_renames_or_removes_is_kept_and_named(
    history: TemplateHistory,
    monorepo: Path,
    capsys: pytest.CaptureFixture[str],
    story: tuple,
) -> None:
    edited, change, renamed_to = story
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    append_line(service / edited, "# tuned by the greeting team")
    kept = (service / edited).read_text()
    commit_all(monorepo, "service edits")
    change(history)
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service))

    assert code == 1
    (result,) = report["services"]
    assert (result["status"], result["after"]) == ("review", "v1.1.0")
    assert (service / edited).read_text() == kept
    (message,) = result["kept"]
    assert message.startswith(f"{edited}: ")
    if renamed_to:
        assert f"renamed to {renamed_to} by v1.1.0 but edited here" in message
        assert (service / renamed_to).is_file()
    else:
        assert "removed by v1.1.0 but edited here" in message


def test_changing_service_name_keeps_the_edited_compose_file(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    append_line(service / "docker-compose.greeter.yml", "# tuned by the greeting team")
    kept = (service / "docker-compose.greeter.yml").read_text()
    commit_all(monorepo, "service edits")

    code, report = update_json(capsys, "update", str(service), "--data", "service_name=welcomer")

    assert code == 1
    (result,) = report["services"]
    assert result["answers"]["service_name"] == ["greeter", "welcomer"]
    assert (service / "docker-compose.greeter.yml").read_text() == kept
    assert (service / "docker-compose.welcomer.yml").is_file()
    assert "docker-compose.greeter.yml: renamed to docker-compose.welcomer.yml" in result["kept"][0]


def test_an_unedited_file_the_release_removes_is_removed(history: TemplateHistory, monorepo: Path) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    history.remove("template/app/_legacy.py")
    history.release("v1.1.0")

    assert cli(["update", str(service)]) == 0
    assert not (service / "app/_legacy.py").exists()


# --- 2. an unresolved conflict elsewhere in the repository -------------------------------------------


def test_an_unresolved_conflict_in_one_service_does_not_stop_the_others(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha = generate(history.path, monorepo, "alpha", "v1.0.0")
    beta = generate(history.path, monorepo, "beta", "v1.0.0")
    gamma = generate(history.path, monorepo, "gamma", "v1.0.0")
    conflicting_edit(alpha)
    commit_all(monorepo, "alpha edits a template file")
    release_conflicting_change(history, "v1.1.0")
    update(alpha, conflict="inline")  # plain copier: leaves unmerged entries in the monorepo's index
    assert any(line.startswith("UU ") for line in status(monorepo))

    code, report = update_json(capsys, "update-all", str(monorepo / "services"), "--commit")

    assert code == 1
    outcome = {result["service"]: result for result in report["services"]}
    assert outcome["alpha"]["status"] == "skipped"
    assert "uncommitted changes" in outcome["alpha"]["detail"]
    for name, service in (("beta", beta), ("gamma", gamma)):
        assert (outcome[name]["status"], outcome[name]["committed"]) == ("ok", True), outcome[name]
        assert answers(service)["_commit"] == "v1.1.0"
    # alpha's conflict is left exactly as it was, for its owners
    assert all(line[3:].startswith("services/alpha/") for line in status(monorepo))


def test_the_table_stays_a_table_when_a_message_holds_a_bar(tmp_path: Path) -> None:
    result = UpdateResult(tmp_path / "alpha", status="failed", detail="fatal: a | b\nsecond line")
    lines = table([result], tmp_path).splitlines()
    assert [line.count(" | ") for line in lines[:1] + lines[2:]] == [5, 5]
    assert "fatal: a ¦ b second line" in lines[2]


# --- 3. files deleted elsewhere come back ------------------------------------------------------------


def test_a_fleet_update_without_commit_brings_no_removed_file_back(
    history: TemplateHistory, monorepo: Path
) -> None:
    services = [generate(history.path, monorepo, name, "v1.0.0") for name in ("alpha", "beta", "gamma")]
    history.remove("template/app/_legacy.py")
    history.release("v1.1.0")

    assert cli(["update-all", str(monorepo / "services")]) == 0

    for service in services:
        assert not (service / "app/_legacy.py").exists(), service.name
        assert answers(service)["_commit"] == "v1.1.0"


def test_uncommitted_deletions_elsewhere_stay_deleted(history: TemplateHistory, monorepo: Path) -> None:
    service = generate(history.path, monorepo, "alpha", "v1.0.0")
    (monorepo / "docs").mkdir()
    (monorepo / "docs/runbook.md").write_text("# runbook\n")
    (monorepo / "docs/old-name.md").write_text("# moved\n")
    commit_all(monorepo, "docs")
    (monorepo / "docs/runbook.md").unlink()  # a colleague's work in progress, not committed
    (monorepo / "docs/old-name.md").rename(monorepo / "docs/new-name.md")
    history.append("template/app/__main__.py", "\nIN_V2 = True\n")
    history.release("v1.1.0")

    assert cli(["update", str(service)]) == 0

    assert not (monorepo / "docs/runbook.md").exists()
    assert not (monorepo / "docs/old-name.md").exists()
    assert (monorepo / "docs/new-name.md").read_text() == "# moved\n"
    assert "IN_V2 = True" in (service / "app/__main__.py").read_text()


# --- 5. dependency clashes ---------------------------------------------------------------------------


def test_a_release_pinning_a_package_the_service_pins_is_a_reported_clash(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    append_line(service / "requirements-service.txt", "Rich==13.9.4")
    commit_all(monorepo, "the service pins rich")
    history.replace(
        "template/requirements.txt.jinja",
        "-r requirements-service.txt",
        "rich==14.0.0\n-r requirements-service.txt",
    )
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service))

    assert code == 1
    (result,) = report["services"]
    assert result["status"] == "failed"
    assert result["dependency_clashes"] == [
        "rich is pinned to 14.0.0 in requirements.txt and 13.9.4 in requirements-service.txt"
    ]
    assert "requirements clash: rich" in result["detail"]


def test_tests_run_with_the_updated_requirements(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    history.replace("template/requirements-dev.txt", "ruff==0.17.6", "ruff==0.17.6\ntomli-w==1.2.0")
    history.write(
        "template/tests/test_release.py",
        "# Managed by nexus-template: `copier update` replaces this file.\n"
        "import tomli_w\n\n\ndef test_new_test_dependency() -> None:\n"
        '    assert tomli_w.dumps({"a": 1}) == "a = 1\\n"\n',
    )
    history.release("v1.1.0")

    code, report = update_json(
        capsys, "update", str(service), "--test", "--pytest-args", "tests/test_release.py"
    )

    (result,) = report["services"]
    assert (code, result["tests"], result["status"]) == (0, "passed", "ok"), result


# --- 7. binary files, CRLF files, .rej files, backing out --------------------------------------------

LOGO_V1 = b"\x89PNG\r\n\x1a\n\0template logo v1"
LOGO_V2 = b"\x89PNG\r\n\x1a\n\0template logo v2"
LOGO_OURS = b"\x89PNG\r\n\x1a\n\0the greeting team's logo"


def test_a_customised_binary_file_is_kept_and_the_release_version_set_beside_it(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (history.path / "template/app/static").mkdir(parents=True)
    (history.path / "template/app/static/logo.png").write_bytes(LOGO_V1)
    history.release("v1.0.1")
    service = generate(history.path, monorepo, "greeter", "v1.0.1")
    (service / "app/static/logo.png").write_bytes(LOGO_OURS)
    commit_all(monorepo, "our logo")
    (history.path / "template/app/static/logo.png").write_bytes(LOGO_V2)
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service))

    assert code == 1
    (result,) = report["services"]
    assert (result["status"], result["conflicts"]) == ("conflict", ["app/static/logo.png"])
    assert (service / "app/static/logo.png").read_bytes() == LOGO_OURS
    assert (service / "app/static/logo.png.rej").read_bytes() == LOGO_V2


def test_a_crlf_file_merges_like_an_lf_one(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    env = service / ".env.example"
    env.write_bytes((env.read_text() + "GREETING=hello\n").replace("\n", "\r\n").encode())
    commit_all(monorepo, "edited on Windows")
    history.replace(
        "template/.env.example.jinja", "# --- Logging ---", "# --- Logging (changed in v1.1.0) ---"
    )
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service))

    assert (code, report["services"][0]["conflicts"]) == (0, [])
    merged = env.read_bytes()
    assert re.search(rb"^# --- Logging \(changed in v1\.1\.0\) -+\r$", merged, re.MULTILINE)
    assert b"GREETING=hello\r\n" in merged
    assert merged.count(b"\n") == merged.count(b"\r\n")


def test_the_contract_tests_refuse_untracked_rej_files_and_markers(
    history: TemplateHistory, monorepo: Path
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")

    def contract() -> str:
        result = run_python(service, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "conflict_markers")
        return "passed" if result.returncode == 0 else result.stdout

    assert contract() == "passed"
    (service / "app/service.py.rej").write_text("@@ -1 +1 @@\n-old\n+new\n")
    assert "app/service.py.rej" in contract()
    (service / "app/service.py.rej").unlink()
    (service / "app/notes.py").write_text("<<<<<<< before updating\nA = 1\n=======\nA = 2\n>>>>>>> after\n")
    assert "app/notes.py" in contract()


def test_abort_backs_out_of_a_conflicted_update(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    conflicting_edit(service)
    commit_all(monorepo, "edit a template file")
    release_conflicting_change(history, "v1.1.0")
    head = git(monorepo, "rev-parse", "HEAD").stdout
    assert cli(["update", str(service)]) == 1
    assert status(monorepo)

    assert cli(["update", str(service), "--abort"]) == 0

    assert status(monorepo) == []
    assert git(monorepo, "rev-parse", "HEAD").stdout == head
    assert answers(service)["_commit"] == "v1.0.0"
    assert "app/__main__.py" in capsys.readouterr().out


def test_abort_backs_out_of_a_plain_copier_update_left_unmerged(
    history: TemplateHistory, monorepo: Path
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    conflicting_edit(service)
    (service / "app/own.py").write_text("OWN = 1\n")
    commit_all(monorepo, "edit a template file")
    release_conflicting_change(history, "v1.1.0")
    update(service, conflict="inline")
    assert "UU services/greeter/app/__main__.py" in status(monorepo)
    assert git(service, "checkout", "--", ".", check=False).returncode != 0  # what people try first

    assert cli(["update", str(service), "--abort"]) == 0

    assert status(monorepo) == []
    assert (service / "app/own.py").read_text() == "OWN = 1\n"
    assert re.search("tuned for our backend", (service / "app/__main__.py").read_text())


# --- 6. derived answers follow their sources ---------------------------------------------------------


def test_gpu_brings_the_cuda_image_and_gpu_sized_limits_along(
    history: TemplateHistory, monorepo: Path
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")

    assert cli(["update", str(service), "--data", "gpu=true"]) == 0

    assert "ARG BASE_IMAGE=nvidia/cuda:" in (service / "Dockerfile").read_text()
    compose = (service / "docker-compose.greeter.yml").read_text()
    assert 'cpus: "4"' in compose
    assert "memory: 16G\n" in compose
    deployment = (service / "deploy/kubernetes/deployment.yaml").read_text()
    assert 'cpu: "4"' in deployment
    assert "memory: 16Gi" in deployment
    assert (answers(service)["gpu"], answers(service)["base_image"]) == (True, "auto")


def test_python_version_brings_its_image_along(history: TemplateHistory, monorepo: Path) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")

    assert cli(["update", str(service), "--data", "python_version=3.12"]) == 0

    assert "ARG BASE_IMAGE=python:3.12-slim\n" in (service / "Dockerfile").read_text()
    assert 'requires-python = ">=3.12"' in (service / "pyproject.toml").read_text()


def test_a_typed_base_image_is_kept_and_the_update_says_it_may_not_fit(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = "registry.example.com/platform/python:3.11"
    service = generate(history.path, monorepo, "greeter", "v1.0.0", base_image=image)

    code, report = update_json(capsys, "update", str(service), "--data", "python_version=3.12")

    assert code == 1
    (result,) = report["services"]
    assert result["status"] == "review"
    assert f"ARG BASE_IMAGE={image}\n" in (service / "Dockerfile").read_text()
    (note,) = result["notes"]
    assert note.startswith(
        f"base_image is set explicitly to '{image}' and was kept although python_version 3.11 → 3.12"
    )


def test_a_clash_only_the_resolver_sees_is_reported_and_names_the_package(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    append_line(service / "requirements-service.txt", "multidict==5.2.0")  # litestar needs multidict>=6.0.2
    commit_all(monorepo, "the service pins an old multidict")
    history.append("template/app/healthcheck.py.jinja", "\nIN_V1_1 = True\n")
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service))

    (result,) = report["services"]
    assert (code, result["status"]) == (1, "failed")
    (clash,) = result["dependency_clashes"]  # no two files pin multidict: only resolving finds it
    assert clash.startswith("pip cannot resolve requirements-dev.txt:")
    assert "multidict" in clash
    # without pip's check, relocking the updated requirements finds the same clash: the tests do not run
    assert cli(["update", "--abort", str(service)]) == 0
    capsys.readouterr()
    code, report = update_json(capsys, "update", str(service), "--test", "--no-resolve")
    (result,) = report["services"]
    assert (code, result["status"], result["tests"]) == (1, "failed", "not run")
    (clash,) = result["dependency_clashes"]
    assert clash.startswith("requirements.lock cannot be refreshed, uv cannot resolve the requirements:")
    assert "multidict" in clash


def test_a_release_tagged_while_the_process_runs_is_seen(history: TemplateHistory, monorepo: Path) -> None:
    service = generate(history.path, monorepo, "greeter", "v1.0.0")
    history.append("template/app/healthcheck.py.jinja", "\nIN_V1_1 = True\n")
    history.release("v1.1.0")
    assert cli(["update-all", str(monorepo / "services"), "--commit", "--no-resolve"]) == 0
    history.append("template/app/healthcheck.py.jinja", "\nIN_V1_2 = True\n")
    history.release("v1.2.0")

    assert cli(["update-all", str(monorepo / "services"), "--commit", "--no-resolve"]) == 0

    assert answers(service)["_commit"] == "v1.2.0"
    assert status(monorepo) == []


def test_a_service_whose_template_is_gone_fails_alone(
    history: TemplateHistory, monorepo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    moved = generate(history.path, monorepo, "alpha", "v1.0.0")
    other = generate(history.path, monorepo, "beta", "v1.0.0")
    recorded = moved / ".copier-answers.yml"
    edit_file(recorded, (str(history.path), str(tmp_path / "moved-away")))
    commit_all(monorepo, "alpha's template moved")
    history.append("template/app/healthcheck.py.jinja", "\nIN_V1_1 = True\n")
    history.release("v1.1.0")

    code, report = update_json(capsys, "update-all", str(monorepo / "services"), "--commit", "--no-resolve")

    outcome = {result["service"]: result for result in report["services"]}
    assert code == 1
    assert outcome["alpha"]["status"] == "failed"
    assert outcome["alpha"]["detail"].startswith("copier update failed, service left unchanged")
    assert (outcome["beta"]["status"], outcome["beta"]["committed"]) == ("ok", True)
    assert answers(other)["_commit"] == "v1.1.0"
    assert status(monorepo) == []


def test_abort_outside_git_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["update", "--abort", str(tmp_path)]) == 1
    assert "not in a git repository" in capsys.readouterr().err


# --- 7. the service's capabilities are its own ------------------------------------------------------

EXAMPLES = 'template/app/{% if backend != "openai" and openai_capabilities %}capabilities{% endif %}'


def test_an_update_leaves_the_capabilities_and_their_modules_to_the_service(
    history: TemplateHistory, monorepo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """llm-proxy offers embeddings only, though its name suggests chat.completions (the default of a
    question an update does not ask): no update makes a chat module from that default, touches the
    service's embeddings module or changes its list, even when the release changes the examples."""
    service = generate(history.path, monorepo, "llm-proxy", "v1.0.0", capabilities=["embeddings"])
    append_line(service / "app/capabilities/embeddings.py", "# tuned for our model")
    commit_all(monorepo, "our embeddings")
    ours = {path.name: path.read_text() for path in (service / "app/capabilities").iterdir()}
    facts = (service / "release/service.env").read_text()
    history.append(
        f"{EXAMPLES}/{{% if 'embeddings' in capabilities %}}embeddings.py{{% endif %}}.jinja", "# v1.1\n"
    )
    history.append(f"{EXAMPLES}/__init__.py", "# v1.1\n")
    history.release("v1.1.0")

    code, report = update_json(capsys, "update", str(service), "--no-resolve")

    (result,) = report["services"]
    assert (code, result["status"], result["after"]) == (0, "ok", "v1.1.0"), result
    assert {path.name: path.read_text() for path in (service / "app/capabilities").iterdir()} == ours
    assert "SERVICE_CAPABILITIES=embeddings\n" in facts
    assert (service / "release/service.env").read_text() == facts
    script = (
        "from app.main import create_app; app = create_app();"
        " print(sorted(r.path for r in app.app.routes if r.path.startswith('/v1/')))"
    )
    served = run_python(service, "-c", script)
    assert served.returncode == 0, served.stderr
    assert "'/v1/embeddings'" in served.stdout
    assert "/v1/chat/completions" not in served.stdout
