"""A GPU service (Identity.gpus): NVML readiness, inventory and metrics. Without a driver (or without
nvidia-ml-py) they report the error (metrics: absent), never crash."""

import math
import re
import time
from collections.abc import Callable

import pytest
from litestar.testing import TestClient
from nexus_platform import Identity

GPUS = 1


@pytest.fixture
def gpu(make_identity: Callable[..., Identity]) -> Identity:
    return make_identity(gpus=GPUS)


def test_gpu_readiness_check_is_registered_and_never_crashes(
    make_client: Callable[..., TestClient], gpu: Identity
) -> None:
    response = make_client(identity=gpu, GPU_MIN_COUNT=str(GPUS)).get("/readyz")
    [check] = response.json()["checks"]["gpu:count"]
    assert check["observedUnit"] == "devices"
    enough = check["observedValue"] >= GPUS
    assert (check["status"], response.status_code) == (("pass", 200) if enough else ("fail", 503))
    if not enough:
        assert check["output"]


def test_gpu_inventory_is_in_the_metadata(make_client: Callable[..., TestClient], gpu: Identity) -> None:
    metadata = make_client(identity=gpu).get("/v1/metadata").json()
    assert metadata["gpu"] is True
    info = metadata["gpu_info"]
    assert info["count"] == len(info["devices"])
    assert (info["error"] is None) == (info["driver_version"] is not None)
    for device in info["devices"]:  # on a GPU machine: what NVML reports
        assert device["name"]
        assert device["memory_total_bytes"] > 0


def test_gpu_metrics_come_from_nvml_or_are_absent_without_error(
    make_client: Callable[..., TestClient], gpu: Identity
) -> None:
    client = make_client(identity=gpu, GPU_METRICS_INTERVAL_SECONDS="0.5")
    devices = client.get("/v1/metadata").json()["gpu_info"]["devices"]
    deadline = time.monotonic() + 10
    text = client.get("/metrics").text
    while devices and "nexus_gpu_memory_total_bytes{" not in text and time.monotonic() < deadline:
        time.sleep(0.1)  # the first reading is taken by a thread after start-up
        text = client.get("/metrics").text
    gauges = {
        (match[0], match[1]): float(match[2])
        for match in re.findall(r'^(nexus_gpu_\w+)\{gpu="(\d+)",[^}]*\} (\S+)$', text, re.MULTILINE)
    }
    print(gauges)  # on a GPU machine: what NVML reported
    assert {index for _, index in gauges} == {str(device["index"]) for device in devices}
    for device in devices:
        index = str(device["index"])
        assert gauges["nexus_gpu_memory_total_bytes", index] == device["memory_total_bytes"]
        assert 0 <= gauges["nexus_gpu_memory_used_bytes", index] <= device["memory_total_bytes"]
        utilization = gauges["nexus_gpu_utilization_ratio", index]
        assert math.isnan(utilization) or 0 <= utilization <= 1  # NaN where the device does not say
