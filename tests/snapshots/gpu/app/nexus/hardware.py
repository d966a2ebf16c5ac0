# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The GPU hooks of the platform, rendered for `gpu: true` (implemented in app.nexus.gpu)."""

from app.nexus.config import PlatformSettings
from app.nexus.gpu import gpu_count_check, inventory
from app.nexus.metadata import GpuInfo
from app.nexus.readiness import ReadinessCheck


def gpu_inventory() -> GpuInfo | None:
    """The GPUs for the metadata document."""
    return inventory()


def gpu_checks(settings: PlatformSettings) -> dict[str, ReadinessCheck]:
    """`gpu:count`, unless GPU_MIN_COUNT=0 says readiness does not depend on GPUs."""
    if settings.gpu_min_count == 0:
        return {}
    return {"gpu:count": gpu_count_check(settings.gpu_min_count)}
