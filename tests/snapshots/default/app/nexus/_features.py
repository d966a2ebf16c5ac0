# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""Optional platform features, rendered from the answers gpu=false and etcd_registration=false."""

from app.nexus._config import PlatformSettings
from app.nexus._metadata import GpuInfo
from app.nexus._readiness import ReadinessCheck


def gpu_inventory() -> GpuInfo | None:
    """The GPUs for the metadata document: none, this service runs without GPUs."""
    return None


def gpu_checks(settings: PlatformSettings) -> dict[str, ReadinessCheck]:
    return {}


# The GPU metrics sampler: none, this service runs without GPUs.
gpu_metrics = None


# The etcd registration of this service: none, it was rendered without `etcd_registration`.
registrar = None
