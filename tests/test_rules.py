"""The answer rules and derived defaults of extensions/rules.py, as plain functions."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from nexus_template.render import ROOT


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"template_{name}", ROOT / "extensions" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


rules = _load("rules")
context = _load("context")


@pytest.mark.parametrize("name", ["ab", "image-generator", "llm2", "a" * 40, "tts-v2"])
def test_good_service_names(name: str) -> None:
    assert rules.service_name_error(name) == ""


@pytest.mark.parametrize(
    "image",
    [
        "python:3.11-slim",
        "nvidia/cuda:12.8.1-runtime-ubuntu24.04",
        "localhost:5000/team/svc",
        "registry.example.com/a/b/c:1.0@sha256:" + "a" * 64,
        "ubuntu",
    ],
)
def test_good_image_references(image: str) -> None:
    assert rules.image_reference_error(image) == ""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ollama", ["chat.completions", "completions"]),
        ("text-embedder", ["embeddings"]),
        ("tts", ["audio.speech"]),
        ("image-generator", ["images.generations"]),
        ("billing", []),
    ],
)
def test_suggested_capabilities(name: str, expected: list[str]) -> None:
    assert rules.suggested_capabilities(name) == expected
    assert rules.capabilities_error(expected) == ""


def test_default_base_image_follows_gpu_and_python() -> None:
    assert rules.default_base_image(False, "3.12") == "python:3.12-slim"
    assert rules.default_base_image(True, "3.12") == rules.CUDA_RUNTIME_IMAGE


def test_derived_names_are_computed_once() -> None:
    assert context.derived_names("image-generator") == {
        "env_prefix": "IMAGE_GENERATOR",
        "compose_file": "docker-compose.image-generator.yml",
        "compose_override_file": "docker-compose.image-generator.override.yml",
        "container_name": "nexus-image-generator",
        "image_name": "nexus/image-generator",
        "dist_name": "nexus-image-generator",
    }
