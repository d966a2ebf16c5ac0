# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The GPU hooks of the platform, rendered for `gpu: false`."""

from app.nexus.config import PlatformSettings
from app.nexus.metadata import GpuInfo
from app.nexus.readiness import ReadinessCheck


def gpu_inventory() -> GpuInfo | None:
    """The GPUs for the metadata document: none, this service runs without GPUs."""
    return None


def gpu_checks(settings: PlatformSettings) -> dict[str, ReadinessCheck]:
    return {}
