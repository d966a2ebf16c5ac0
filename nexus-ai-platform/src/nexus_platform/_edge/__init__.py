"""The outer ASGI layer every request passes: limits, deadlines, request ids, probes on the fast path, and
what it records (access lines, metrics, traces)."""
