# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""Optional platform features, rendered from the answers gpu=true and etcd_registration=false."""

from app.nexus._config import PlatformSettings
from app.nexus._gpu import GpuMetrics, gpu_count_check, inventory
from app.nexus._metadata import GpuInfo
from app.nexus._readiness import ReadinessCheck


def gpu_inventory() -> GpuInfo | None:
    """The GPUs for the metadata document."""
    return inventory()


def gpu_checks(settings: PlatformSettings) -> dict[str, ReadinessCheck]:
    """`gpu:count`, unless GPU_MIN_COUNT=0 says readiness does not depend on GPUs."""
    if settings.gpu_min_count == 0:
        return {}
    return {"gpu:count": gpu_count_check(settings.gpu_min_count)}


def gpu_metrics(settings: PlatformSettings) -> GpuMetrics:
    """The GPU metrics sampler (started with the app; no metrics without NVML)."""
    return GpuMetrics(settings.gpu_metrics_interval_seconds)


# The etcd registration of this service: none, it was rendered without `etcd_registration`.
registrar = None
