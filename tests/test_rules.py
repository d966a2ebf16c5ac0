"""The answer rules and derived defaults of extensions/rules.py, as plain functions."""

from __future__ import annotations

import pytest

from tests.extension_modules import load_extension

rules = load_extension("rules")
context = load_extension("context")


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


def test_derived_answers_follow_gpu_and_python() -> None:
    context = load_extension("context")
    assert context.derived_answers(False, "3.12") == {
        "base_image": "python:3.12-slim",
        "cpu_limit": "1",
        "memory_limit": "512Mi",
    }
    assert context.derived_answers(True, "3.12") == {
        "base_image": context.CUDA_RUNTIME_IMAGE,
        "cpu_limit": "4",
        "memory_limit": "16Gi",
    }
    # `auto` (copier.yml's default for each) passes their rules
    assert rules.image_reference_error("auto") == rules.cpu_limit_error("auto") == ""
    assert rules.memory_limit_error("auto") == ""


def test_derived_names_are_computed_once() -> None:
    assert context.derived_names("image-generator") == {
        "env_prefix": "IMAGE_GENERATOR",
        "compose_file": "docker-compose.image-generator.yml",
        "compose_override_file": "docker-compose.image-generator.override.yml",
        "container_name": "nexus-image-generator",
        "image_name": "nexus/image-generator",
        "dist_name": "nexus-image-generator",
    }
