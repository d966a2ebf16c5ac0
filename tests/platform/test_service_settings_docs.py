"""A service's own settings are documented like the platform's: from their `msgspec.Meta(description=...)`
into `python -m nexus_platform settings --app`, .env.example and the README's service settings table; the
contract names a variable missing from .env.example, or one no settings declare, in one sentence."""

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated

import msgspec
import pytest
from nexus_platform import SECRET, Identity, ServiceSpec
from nexus_platform._config.docs import (
    README_END,
    README_START,
    SERVICE_HEADER,
    SERVICE_README_END,
    SERVICE_README_START,
    env_block,
    markdown_table,
    own_settings,
    service_env_lines,
    service_settings,
)
from nexus_platform.testing import ContractTests
from nexus_platform.testing._service import NexusService


class ServiceSettings(msgspec.Struct, frozen=True, kw_only=True):
    gateway_region: Annotated[str, msgspec.Meta(description="Region the gateway routes this service in")] = (
        "eu"
    )
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=64, description="Prompts sent to the model at once")] = 8
    model_token: Annotated[str, SECRET, msgspec.Meta(description="Secret: the model hub's token")] = "t0ken"
    legacy_flag: bool = False  # no description: documented by name and default only


ENV_LINES = [
    "# Region the gateway routes this service in",
    "GATEWAY_REGION=eu",
    "# Prompts sent to the model at once; accepted: 1 to 64",
    "BATCH_SIZE=8",
    "# Secret: the model hub's token",
    "MODEL_TOKEN=",
    "# accepted: true or false",
    "LEGACY_FLAG=false",
]
TABLE = """\
| variable | default | meaning |
| --- | --- | --- |
| `GATEWAY_REGION` | `eu` | Region the gateway routes this service in |
| `BATCH_SIZE` | `8` | Prompts sent to the model at once; accepted: 1 to 64 |
| `MODEL_TOKEN` | empty | Secret: the model hub's token |
| `LEGACY_FLAG` | `false` | accepted: true or false |
"""


def test_own_settings_are_written_like_the_platforms() -> None:
    settings = own_settings(ServiceSettings)
    assert [line for setting in settings for line in service_env_lines(setting)] == ENV_LINES
    assert markdown_table(settings) == TABLE, "a secret's default is never written"
    assert own_settings(None) == []


def _service(root: Path) -> NexusService:
    """A service folder with ServiceSettings, its .env.example and README.md as the docs write them."""
    facts = root / "release" / "service.env"
    facts.parent.mkdir(parents=True)
    facts.write_text('SERVICE_VERSION=1.0.0\nSERVICE_DESCRIPTION="A gateway"\nSERVICE_OWNER=edge-team\n')
    identity = Identity(name="gateway-svc", facts_file=facts)
    platform = service_settings(identity)
    (root / ".env.example").write_text(
        f"# header\n\n{env_block(platform)}\n" + "\n".join([SERVICE_HEADER, *ENV_LINES]) + "\n"
    )
    (root / "README.md").write_text(
        f"{README_START}\n\n{markdown_table(platform)}\n{README_END}\n\n"
        f"{SERVICE_README_START}\n\n{TABLE}\n{SERVICE_README_END}\n"
    )
    return NexusService(spec=ServiceSpec(settings=ServiceSettings), identity=identity, root=root)


def _failure(check: str, service: NexusService) -> str:
    with pytest.raises(AssertionError) as failed:
        getattr(ContractTests(), check)(service)
    return str(failed.value).split("\nassert")[0]


ENV_CHECK = "test_env_example_documents_every_setting_with_its_default"
README_CHECK = "test_readme_settings_table_is_what_the_platform_produces"


def test_the_contract_passes_documented_settings(tmp_path: Path) -> None:
    service = _service(tmp_path)
    ContractTests().test_env_example_documents_every_setting_with_its_default(service)
    ContractTests().test_readme_settings_table_is_what_the_platform_produces(service)


@pytest.mark.parametrize(
    ("edit", "sentence"),
    [
        (
            lambda text: text.replace("GATEWAY_REGION=eu\n", ""),
            "GATEWAY_REGION is declared in ServiceSettings but missing from .env.example (`python -m "
            "nexus_platform settings --app` prints its lines)",
        ),
        (
            lambda text: text + "GATEWAY_ZONE=a\n",
            "GATEWAY_ZONE is in .env.example but declared neither in ServiceSettings nor by the platform",
        ),
        (
            lambda text: text.replace("# Region the gateway", "# The region the gateway"),
            "GATEWAY_REGION's comment in .env.example is not its description in ServiceSettings (write the "
            "lines `python -m nexus_platform settings --app` prints for it)",
        ),
    ],
    ids=["missing", "extra", "comment"],
)
def test_an_env_example_that_disagrees_fails_with_a_sentence_naming_the_variable(
    tmp_path: Path, edit: object, sentence: str
) -> None:
    service = _service(tmp_path)
    env = tmp_path / ".env.example"
    env.write_text(edit(env.read_text()))  # type: ignore[operator]  # the parametrized edits
    assert _failure(ENV_CHECK, service) == sentence


def test_a_readme_row_that_disagrees_fails_naming_the_variable(tmp_path: Path) -> None:
    service = _service(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("| `BATCH_SIZE` | `8` |", "| `BATCH_SIZE` | `4` |"))
    assert _failure(README_CHECK, service).startswith(
        "BATCH_SIZE is declared in ServiceSettings with a description its row in README.md's service "
        "settings table lacks"
    )
    readme.write_text(readme.read_text().split(SERVICE_README_START)[0])
    assert "the service settings table" in _failure(README_CHECK, service)


MAIN = """
from pathlib import Path
from typing import Annotated

import msgspec
from nexus_platform import Identity, ServiceSpec


class ServiceSettings(msgspec.Struct, frozen=True, kw_only=True):
    gateway_region: Annotated[str, msgspec.Meta(description="Region the gateway routes this service in")] = "eu"


service = ServiceSpec(settings=ServiceSettings)
IDENTITY = Identity(name="gateway-svc", facts_file=Path(__file__).parent / "service.env", gpus=1)
"""


@pytest.mark.parametrize("output", ["env", "markdown"])
def test_the_settings_command_documents_a_services_own_settings(tmp_path: Path, output: str) -> None:
    """Run in the service's folder, `settings --app` writes the service's platform part (its features: the
    GPU settings here) and then its own settings, as .env.example and the README hold them."""
    package = tmp_path / "gatewaysvc"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(textwrap.dedent(MAIN))
    result = subprocess.run(
        [sys.executable, "-m", "nexus_platform", "settings", "--app", "gatewaysvc.main", "--format", output],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    if output == "env":
        assert result.stdout.endswith(
            f"\n\n{SERVICE_HEADER}\n# Region the gateway routes this service in\nGATEWAY_REGION=eu\n"
        )
        assert "\nGPU_MIN_COUNT=1\n" in result.stdout, "the service's features and defaults"
    else:
        assert result.stdout.endswith(
            "\n\n| variable | default | meaning |\n| --- | --- | --- |\n"
            "| `GATEWAY_REGION` | `eu` | Region the gateway routes this service in |\n"
        )
        assert "| `GPU_MIN_COUNT` | `1` |" in result.stdout
