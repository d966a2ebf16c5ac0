"""The v0.4.0 update on the real v0.3.0 history: a service's vendored app/nexus/ gives way to the library.

The template repository holds this repository's last v0.3.0 commit (the platform rendered into every
service as app/nexus/), tagged v0.3.0, then the working tree, tagged v0.4.0. A service made at v0.3.0 edits
one platform file and imports the platform in its own code, and takes v0.4.0 through `nexus-template
update` and through plain `copier update`: every platform file it did not edit is gone, the edited one is
kept and named, its imports are the library's, its suite passes and `python -m app` serves /health.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nexus_platform import __version__ as platform_version

from devtools.live import live_services
from devtools.render import PYTHON, ROOT, copy_working_tree_files, git, run_python
from devtools.wheel import build_wheel
from nexus_template.cli import main as cli
from tests.edits import edit_file
from tests.histories import TemplateHistory, commit_all, generate, new_monorepo, status

pytestmark = pytest.mark.slow

V0_3_0 = "f6deb34ad4ff23fe1d27d54aaa80b6958b859b86"  # the last commit of v0.3.0 in this repository
SERVICE = "services/legacy"
EDITED = "app/nexus/_errors.py"
# the service's own imports of v0.3.0's platform, next to the one its seed has
OWN_IMPORTS = (
    "from app.nexus import ServiceSpec, current_request_id, nexus_of\n",
    "from app.nexus import ServiceSpec, current_request_id, nexus_of\n"
    "from app.nexus._errors import ServiceError\n"
    "from app.nexus.openai import ChatMessage\n",
)
OWN_CODE = "\n\nGREETINGS: list[ChatMessage] = []\nREFUSAL: type[ServiceError] = ServiceError\n"


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A monorepo whose service was made at v0.3.0 and edited; the template released up to v0.4.0."""
    root = tmp_path_factory.mktemp("platform-story")
    template = TemplateHistory(root / "template")
    template.path.mkdir()
    archive = subprocess.run(["git", "archive", V0_3_0], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(template.path)], input=archive, check=True)
    git(template.path, "init", "--quiet", "--initial-branch=main")
    template.release("v0.3.0")
    monorepo = new_monorepo(root / "platform")
    service = generate(template.path, monorepo, "legacy", "v0.3.0")
    (service / EDITED).write_text(
        (service / EDITED).read_text() + "# our 503 wording, agreed with the gateway\n"
    )
    edit_file(service / "app/service.py", OWN_IMPORTS)
    (service / "app/service.py").write_text((service / "app/service.py").read_text() + OWN_CODE)
    commit_all(monorepo, "legacy: its own code, and an edit of a platform file")
    git(template.path, "rm", "-r", "--quiet", ".")
    copy_working_tree_files(template.path)
    template.release("v0.4.0")
    return monorepo


@pytest.fixture
def wheelhouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The nexus-ai-platform wheel of the working tree, where pip and uv find it (no index has it)."""
    wheels = tmp_path / "wheels"
    build_wheel(wheels)
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("NEXUS_TEMPLATE_CACHE", str(tmp_path / "cache"))  # no lock of another wheel reused
    return wheels


def _copy(monorepo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "platform"
    shutil.copytree(monorepo, copy, symlinks=True)
    return copy / SERVICE


def _assert_the_platform_is_the_library(service: Path) -> None:
    """Only the edited platform file is left, and the service's own code imports the library."""
    assert sorted(path.relative_to(service).as_posix() for path in (service / "app/nexus").rglob("*.py")) == [
        EDITED
    ]
    assert (service / EDITED).read_text().endswith("# our 503 wording, agreed with the gateway\n")
    code = (service / "app/service.py").read_text()
    assert "from nexus_platform import ServiceSpec, current_request_id, nexus_of\n" in code
    assert "from nexus_platform import ServiceError\n" in code  # public now: the public import
    assert "from nexus_platform.openai import ChatMessage\n" in code
    assert "app.nexus" not in code
    assert f"nexus-ai-platform=={platform_version}\n" in (service / "requirements.txt").read_text()


def _assert_it_passes_and_serves(service: Path, tmp_path: Path) -> None:
    suite = run_python(service, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", timeout=600)
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-2000:]
    with live_services(service, tmp_path) as start:
        assert start().url  # /health answered 200 (LiveService checks it)


def test_nexus_template_update_keeps_the_edited_platform_file_and_moves_the_imports(
    story: Path, tmp_path: Path, wheelhouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = _copy(story, tmp_path)

    exit_code = cli(["update", str(service), "--json"])

    out = capsys.readouterr().out
    assert exit_code == 1, out
    assert '"status": "review"' in out
    assert f"{EDITED}: removed by v0.4.0 but edited here: your version is kept" in out
    _assert_the_platform_is_the_library(service)
    # the lock was refreshed by the library's locking module, with the wheel's hash
    lock = (service / "requirements.lock").read_text()
    assert f"\nnexus-ai-platform=={platform_version} \\\n    --hash=sha256:" in lock
    assert "python -m nexus_platform lock" in lock
    _assert_it_passes_and_serves(service, tmp_path)


def test_plain_copier_update_keeps_the_edited_platform_file_and_moves_the_imports(
    story: Path, tmp_path: Path, wheelhouse: Path
) -> None:
    service = _copy(story, tmp_path)

    copier = subprocess.run(
        [str(Path(PYTHON).with_name("copier")), "update", "--trust", "--defaults", "--vcs-ref", "v0.4.0"],
        cwd=service,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert copier.returncode == 0, copier.stderr
    assert (
        f"migration v0.4.0: {EDITED}: removed by v0.4.0 (the platform is the nexus-ai-platform library now) but "
        "edited here: your version is kept" in copier.stderr
    )
    assert (
        "migration v0.4.0: app/service.py: imports rewritten: app.nexus -> nexus_platform (line 15), "
        "app.nexus._errors -> nexus_platform (line 16), app.nexus.openai -> nexus_platform.openai (line 17)"
    ) in copier.stderr
    _assert_the_platform_is_the_library(service)
    assert f" M {SERVICE}/{EDITED}" not in status(service)  # kept as committed
    # plain copier leaves the lock to the service (docs/updating.md): refresh it, as its README says
    assert run_python(service, "-m", "nexus_platform", "lock").returncode == 0
    _assert_it_passes_and_serves(service, tmp_path)


# --- the import rewriting, on the cases a story does not reach ------------------------------------------

ODD_IMPORTS = '''"""A service module with every kind of platform import."""

import app.nexus
import app.nexus.openai as oai
from app.nexus import _checks
from app.nexus._features import FEATURES
from app.nexus._redaction import redact_url
from app.nexus.openai import ChatMessage, NoSuchType

PATCHED = "app.nexus._logs.emit"
'''


def test_the_migration_rewrites_what_maps_and_names_what_does_not(tmp_path: Path) -> None:
    service = tmp_path / "service"
    (service / "app").mkdir(parents=True)
    (service / "app/odd.py").write_text(ODD_IMPORTS)
    git(service, "init", "--quiet", "--initial-branch=main")
    commit_all(service, "a service")

    migration = subprocess.run(
        [sys.executable, str(ROOT / "migrations/v0_4_0.py"), str(ROOT), ".copier-answers.yml", "v0.3.0"],
        cwd=service,
        capture_output=True,
        text=True,
        check=True,
    )

    code = (service / "app/odd.py").read_text()
    assert "import nexus_platform.openai as oai\n" in code
    assert "from nexus_platform._observability.redaction import redact_url\n" in code
    said = migration.stderr
    assert "app/odd.py:3: `import app.nexus` not rewritten" in said
    assert "app/odd.py:5: imports internal modules of app.nexus: not rewritten" in said
    assert (
        "app/odd.py:6: the import of app.nexus._features was not rewritten: v0.4.0 has no counterpart" in said
    )
    assert (
        "app/odd.py:8: the import of app.nexus.openai was not rewritten: nexus_platform.openai has no public NoSuchType"
        in said
    )
    assert (
        "app.nexus._redaction -> nexus_platform._observability.redaction (line 7; an internal module" in said
    )
    assert "app/odd.py:10: a string still names app.nexus" in said
    # idempotent: a second run changes nothing and rewrites nothing
    again = subprocess.run(
        [sys.executable, str(ROOT / "migrations/v0_4_0.py"), str(ROOT), ".copier-answers.yml", "v0.3.0"],
        cwd=service,
        capture_output=True,
        text=True,
        check=True,
    )
    assert (service / "app/odd.py").read_text() == code
    assert "imports rewritten" not in again.stderr
