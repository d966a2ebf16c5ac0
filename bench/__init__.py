"""The benchmark: a rendered service against its peers and the raw ASGI ceiling (see docs/performance.md)."""
