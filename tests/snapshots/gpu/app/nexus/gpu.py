# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""GPUs through NVML (nvidia-ml-py): the inventory in the metadata and the `gpu:count` readiness check.

NVML sees every GPU the container runtime exposes and ignores CUDA_VISIBLE_DEVICES, so the devices
listed there (indices or GPU-... UUIDs) are applied here. Without a driver nothing crashes: the
inventory carries the error and the check fails with it.
"""

import asyncio
import os
import threading

import pynvml

from app.nexus.metadata import GpuDevice, GpuInfo
from app.nexus.readiness import CheckResult, ReadinessCheck

_lock = threading.Lock()
_initialised = False


def _ensure_nvml() -> None:
    """nvmlInit once per process (about 70 ms); raises pynvml.NVMLError when there is no driver."""
    global _initialised
    with _lock:
        if not _initialised:
            pynvml.nvmlInit()
            _initialised = True


def _wanted(index: int, uuid: str, visible: str | None) -> bool:
    if visible is None or visible.strip().lower() == "all":
        return True
    wanted = {item.strip() for item in visible.split(",") if item.strip()}
    return str(index) in wanted or uuid in wanted


def _devices() -> list[GpuDevice]:
    _ensure_nvml()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        uuid = pynvml.nvmlDeviceGetUUID(handle)
        if _wanted(index, uuid, visible):
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            devices.append(GpuDevice(index, pynvml.nvmlDeviceGetName(handle), uuid, int(memory.total)))
    return devices


def _error_text(error: pynvml.NVMLError) -> str:
    return f"NVML unavailable: {type(error).__name__}"


def inventory() -> GpuInfo:
    try:
        devices = _devices()
        cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        return GpuInfo(
            count=len(devices),
            devices=devices,
            driver_version=pynvml.nvmlSystemGetDriverVersion(),
            cuda_version=f"{cuda // 1000}.{cuda % 1000 // 10}",
        )
    except pynvml.NVMLError as error:
        return GpuInfo(count=0, devices=[], driver_version=None, cuda_version=None, error=_error_text(error))


def gpu_count_check(minimum: int) -> ReadinessCheck:
    """Pass while at least `minimum` GPUs are visible; queried live (microseconds once NVML is up)."""

    async def check(_context: object) -> CheckResult:
        try:
            count = len(await asyncio.to_thread(_devices))
        except pynvml.NVMLError as error:
            return CheckResult("fail", observed_value=0, observed_unit="devices", output=_error_text(error))
        if count < minimum:
            return CheckResult(
                "fail",
                observed_value=count,
                observed_unit="devices",
                output=f"{count} GPU(s) visible, {minimum} required",
            )
        return CheckResult("pass", observed_value=count, observed_unit="devices")

    return check
