"""The model-sized defaults: docs/settings.md's table is nexus_platform/_sizing.py's, and a service gets
the largest of what its capabilities ask for."""

import re
from pathlib import Path

from nexus_platform._sizing import GATEWAY, PLAIN, SIZES, WRAPPER, workload_defaults

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_the_documented_table_is_the_code_s() -> None:
    rows = {}
    for line in DOCS.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"\d+(\.\d+)?", cells[1]):
            rows[cells[0]] = (float(cells[1]), float(cells[2]), int(cells[3].split()[0]), int(cells[4]))
    expected = {
        "no OpenAI capability": PLAIN,
        "a wrapper (`backend: openai`)": WRAPPER,
        "the gateway (`role: gateway`)": GATEWAY,
    }
    expected |= {f"`{name}`": sizes for name, sizes in SIZES.items()}
    assert rows == {label: tuple(sizes) for label, sizes in expected.items()}


def test_a_service_gets_the_largest_its_capabilities_ask_for() -> None:
    assert workload_defaults([], "none") == PLAIN._asdict()
    speech_and_embeddings = workload_defaults(["audio.speech", "embeddings", "rerank"], "none")
    assert speech_and_embeddings == {
        "backend_timeout_seconds": 120.0,
        "request_timeout_seconds": 120.0,
        "max_body_bytes": 16 << 20,
        "max_concurrent_requests": 64,
    }
    assert workload_defaults(["audio.speech"], "openai") == WRAPPER._asdict()
    assert workload_defaults([], "none", "gateway") == GATEWAY._asdict()
