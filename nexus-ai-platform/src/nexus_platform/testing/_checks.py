"""Small assertions the contract and a service's own tests share."""

import json
from typing import Any

import httpx

__all__ = ["assert_openai_error", "json_lines"]


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """`response` is an OpenAI error of `status` with no traceback; returns its `error` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert "Traceback" not in response.text
    error: dict[str, Any] = body["error"]
    return error


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of `text` (other lines, such as a traceback's, are left out)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
