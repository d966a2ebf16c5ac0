"""GPUs through NVML (nvidia-ml-py): the inventory in the metadata, the `gpu:count` readiness check and
the GPU metrics (GpuMetrics).

NVML sees every GPU the container runtime exposes and ignores CUDA_VISIBLE_DEVICES, so the devices
listed there (indices or GPU-... UUIDs) are applied here. Without a driver nothing crashes: the
inventory carries the error and the check fails with it.
"""

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from typing import NamedTuple

import pynvml

from nexus_platform._observability.metrics import Family, Labels
from nexus_platform._probes.metadata import GpuDevice, GpuInfo
from nexus_platform._probes.readiness import CheckResult, ReadinessCheck

logger = logging.getLogger("nexus.gpu")

_lock = threading.Lock()
# set once nvmlInit succeeded in this process
_nvml_ready = threading.Event()


def _ensure_nvml() -> None:
    """nvmlInit once per process (about 70 ms); raises pynvml.NVMLError when there is no driver (and
    tries again on the next call)."""
    with _lock:
        if not _nvml_ready.is_set():
            pynvml.nvmlInit()
            _nvml_ready.set()


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


class GpuReading(NamedTuple):
    device_index: int
    uuid: str
    name: str
    memory_used: int
    memory_total: int
    utilization: float  # 0..1 over NVML's last sample period
    temperature: float  # degrees Celsius


class GpuMetrics:
    """Per-device memory, utilisation and temperature, read every `interval` seconds by a daemon thread
    (never while a request waits). Without NVML there are no readings and no GPU metrics."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.readings: list[GpuReading] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="nexus-gpu-metrics", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        reported = False
        while not self._stop.is_set():
            try:
                self.readings = _read_all()
            except pynvml.NVMLError as error:  # no driver, or it went away: no GPU metrics, no crash
                self.readings = []
                if not reported:
                    logger.info("GPU metrics unavailable: %s", _error_text(error))
                    reported = True
            self._stop.wait(self.interval)

    def families(self) -> list[Family]:
        readings = self.readings

        def samples(value: Callable[[GpuReading], float]) -> list[tuple[str, Labels, float]]:
            return [
                ("", (("gpu", str(each.device_index)), ("uuid", each.uuid), ("name", each.name)), value(each))
                for each in readings
            ]

        return [
            Family("nexus_gpu_memory_used_bytes", "gauge", "GPU memory in use.", samples(lambda each: each.memory_used)),
            Family("nexus_gpu_memory_total_bytes", "gauge", "GPU memory in total.", samples(lambda each: each.memory_total)),
            Family("nexus_gpu_utilization_ratio", "gauge", "Fraction of time the GPU was busy (NVML).", samples(lambda each: each.utilization)),
            Family("nexus_gpu_temperature_celsius", "gauge", "GPU core temperature.", samples(lambda each: each.temperature)),
        ]  # fmt: skip


def _read_all() -> list[GpuReading]:
    _ensure_nvml()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    readings = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        uuid = pynvml.nvmlDeviceGetUUID(handle)
        if _wanted(index, uuid, visible):
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            readings.append(
                GpuReading(
                    device_index=index,
                    uuid=uuid,
                    name=pynvml.nvmlDeviceGetName(handle),
                    memory_used=int(memory.used),
                    memory_total=int(memory.total),
                    utilization=_utilization(handle),
                    temperature=_temperature(handle),
                )
            )
    return readings


# some devices do not report these (NaN then); the other readings stay
def _utilization(handle: object) -> float:
    try:
        percent: int = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
        return percent / 100
    except pynvml.NVMLError_NotSupported:
        return float("nan")


def _temperature(handle: object) -> float:
    try:
        celsius: int = pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
        return celsius
    except pynvml.NVMLError_NotSupported:
        return float("nan")
