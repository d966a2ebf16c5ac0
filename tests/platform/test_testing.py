"""nexus_platform.testing: the contract a service runs against its own app.

In process, the contract runs against the example service here (its HTTP checks; the example has no
service folder of its own, so the checks of a service's files run in the rendered services below). Then
rendered services run their own suites after the edits a service owner makes: the example endpoint
replaced, the text-to-speech example made WAV-only; and a capability module that refuses a format it
declares fails the contract, saying so.
"""

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from nexus_platform.testing import ContractTests


class TestExampleContract(ContractTests):
    """The contract's HTTP checks on the example service (tests/platform/example)."""


# the example is no rendered service: no lock, .env.example or README of its own, and its process checks
# are the rendered services' (slow, below); a None attribute is no test
for _check in (
    "test_the_lock_is_current",
    "test_env_example_documents_every_setting_with_its_default",
    "test_env_example_platform_part_is_what_the_platform_produces",
    "test_readme_settings_table_is_what_the_platform_produces",
    "test_no_conflict_markers_are_left_in_the_service",
    "test_an_invalid_setting_stops_the_process_with_one_line",
    "test_the_live_service_logs_json_with_request_ids_and_drains_on_sigterm",
):
    setattr(TestExampleContract, _check, None)


GREETING_SERVICE = '''"""A greeting instead of the example endpoint."""

from litestar import get

from nexus_platform import ServiceSpec


@get("/v1/greeting", summary="Say hello", tags=["service"])
async def greeting() -> dict[str, str]:
    return {"greeting": "hello"}


service = ServiceSpec(route_handlers=[greeting])
'''
GREETING_TEST = '''"""The greeting's own test."""

from litestar.testing import TestClient


def test_the_greeting(client: TestClient) -> None:
    assert client.get("/v1/greeting").json() == {"greeting": "hello"}
'''


def _copy(rendered: Callable[[str], Path], name: str, into: Path) -> Path:
    """A copy of a rendered service to edit."""
    subprocess.run(["cp", "-a", str(rendered(name)), str(into)], check=True)
    return into


def _pytest(service: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=service,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result, time.monotonic() - started


@pytest.mark.slow
def test_a_service_with_its_example_endpoint_replaced_passes_its_suite(
    rendered: Callable[[str], Path], tmp_path: Path
) -> None:
    service = _copy(rendered, "default", tmp_path / "service")
    (service / "app" / "service.py").write_text(GREETING_SERVICE)
    (service / ".env.example").write_text(  # its settings are gone with the example
        "".join(
            line
            for line in (service / ".env.example").read_text().splitlines(keepends=True)
            if not line.startswith(("EXAMPLE_PREFIX=", "# Prefix added to every echo output"))
        )
    )
    (service / "tests" / "test_service.py").write_text(GREETING_TEST)
    result, seconds = _pytest(service)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    print(
        f"the service's suite: {seconds:.1f} s"
    )  # its budget is checked once, in tests/test_fresh_service.py


@pytest.mark.slow
def test_a_wav_only_speech_service_passes_and_a_declared_format_it_refuses_fails(
    rendered: Callable[[str], Path], tmp_path: Path
) -> None:
    service = _copy(rendered, "ai-local", tmp_path / "service")
    speech = service / "app" / "capabilities" / "audio_speech.py"
    source = speech.read_text()
    assert 'FORMATS = ("mp3", "wav", "pcm")' in source
    speech.write_text(source.replace('FORMATS = ("mp3", "wav", "pcm")', 'FORMATS = ("wav",)'))
    result, seconds = _pytest(service)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    print(
        f"the service's suite: {seconds:.1f} s"
    )  # its budget is checked once, in tests/test_fresh_service.py

    # FORMATS still says wav, which `speak` now refuses
    assert "if request.response_format not in FORMATS:" in source
    speech.write_text(
        source.replace(
            "if request.response_format not in FORMATS:", 'if request.response_format not in ("mp3", "pcm"):'
        )
    )
    result, _ = _pytest(service)
    assert result.returncode == 1, result.stdout[-4000:]
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1, result.stdout[-4000:]
    assert "TestContract::test_speech_in_the_formats_and_voices_it_declares" in failed[0]
    assert "the formats it speaks are not its FORMATS" in result.stdout
