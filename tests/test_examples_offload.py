"""The capability examples a rendered service starts from keep the event loop free: their model work runs in
the platform's thread pool (`run_blocking`), as docs/customising.md tells service authors to. Teams copy
examples; one that blocks the loop teaches every service to stall all its other requests.

Each example is driven in process (httpx's ASGI transport: the app runs on the test's own event loop) with
large work, while a ticker measures how late the loop wakes it. A handler that did its work on the loop
shows as a late tick: measured before the fix, the image example held it 190-360 ms, the speech example's
tone 100 ms. (The embeddings example's pure-Python hashing competes for the GIL from its thread: 10-20 ms
either way; a real model's native code releases it.)
Each request runs once before it is measured: a first request's one-time costs (imports, starting the
thread pool) are not the handler's.
"""

import json

import pytest

from devtools.render import run_python

pytestmark = pytest.mark.slow  # a rendered service

# the longest the loop may stay busy at once; generous for a loaded 2-core CI machine (the GIL hands the
# loop back every 5 ms while a pool thread runs Python code)
MAX_LAG_SECONDS = 0.03

SCRIPT = """
import asyncio, json, time
import httpx
from app.main import create_app

REQUESTS = {
    "images.generations": ("/v1/images/generations",
        {"model": "example-image", "prompt": "a red square", "n": 10, "size": "1024x1024"}),
    "audio.speech": ("/v1/audio/speech",
        {"model": "example-tts", "input": "word " * 400, "voice": "alloy", "response_format": "wav"}),
    "embeddings": ("/v1/embeddings",
        {"model": "example-embedding", "input": ["text number %d" % n for n in range(2048)]}),
    "chat.completions": ("/v1/chat/completions",
        {"model": "example-chat", "messages": [{"role": "user", "content": "word " * 2000}]}),
}

async def main():
    app = create_app()
    lags = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        for capability, (path, body) in REQUESTS.items():
            worst, done = 0.0, False
            async def tick():
                nonlocal worst
                while not done:
                    before = time.perf_counter()
                    await asyncio.sleep(0.001)
                    worst = max(worst, time.perf_counter() - before - 0.001)
            warm = await client.post(path, json=body, timeout=60)  # first use: imports, the thread pool
            assert warm.status_code == 200, (capability, warm.status_code, warm.text[:300])
            ticker = asyncio.create_task(tick())
            await asyncio.sleep(0.01)
            answer = await client.post(path, json=body, timeout=60)
            done = True
            await ticker
            assert answer.status_code == 200, (capability, answer.status_code, answer.text[:300])
            lags[capability] = worst
    print(json.dumps(lags))

asyncio.run(main())
"""


def test_no_capability_example_blocks_the_event_loop(rendered) -> None:
    result = run_python(rendered("ai-local"), "-c", SCRIPT, LOG_LEVEL="WARNING")
    assert result.returncode == 0, result.stderr[-3000:]
    lags = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(lags) == {"images.generations", "audio.speech", "embeddings", "chat.completions"}
    blocked = {name: round(lag * 1000, 1) for name, lag in lags.items() if lag > MAX_LAG_SECONDS}
    assert not blocked, f"these examples held the event loop (ms): {blocked}"
