# Managed by nexus-template: `copier update` replaces this file. Your tests belong in tests/test_service.py.
"""GPU contract: NVML readiness and inventory. Without a driver both report the error, never crash."""

from collections.abc import Callable

from litestar.testing import TestClient

from app.nexus import identity


def test_gpu_readiness_check_is_registered_and_never_crashes(make_client: Callable[..., TestClient]) -> None:
    response = make_client(GPU_MIN_COUNT=str(identity.GPU_COUNT)).get("/readyz")
    [check] = response.json()["checks"]["gpu:count"]
    assert check["observedUnit"] == "devices"
    enough = check["observedValue"] >= identity.GPU_COUNT
    assert (check["status"], response.status_code) == (("pass", 200) if enough else ("fail", 503))
    if not enough:
        assert check["output"]


def test_gpu_inventory_is_in_the_metadata(client: TestClient) -> None:
    metadata = client.get("/v1/metadata").json()
    assert metadata["gpu"] is True
    info = metadata["gpu_info"]
    assert info["count"] == len(info["devices"])
    assert (info["error"] is None) == (info["driver_version"] is not None)
    for device in info["devices"]:  # on a GPU machine: what NVML reports
        assert device["name"] and device["memory_total_bytes"] > 0
