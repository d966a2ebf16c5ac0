"""Tests of the service's own endpoints. This file is yours: `copier update` never touches it."""

from collections.abc import Callable

from litestar.testing import TestClient


def test_echo_answers_200_with_the_input(client: TestClient) -> None:
    response = client.post("/v1/echo", json={"input": "hi", "repeat": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "echo"
    assert body["output"] == "hi hi"
    assert body["id"] == f"echo-{response.headers['x-request-id']}"


def test_echo_uses_its_setting(make_client: Callable[..., TestClient]) -> None:
    response = make_client(EXAMPLE_PREFIX="> ").post("/v1/echo", json={"input": "hi"})
    assert response.json()["output"] == "> hi"


def test_echo_reports_every_invalid_field(client: TestClient) -> None:
    response = client.post("/v1/echo", json={"input": "", "repeat": 99, "colour": "red"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    for field in ("`input`", "`repeat`", "`colour`"):
        assert field in error["message"]
