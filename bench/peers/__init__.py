"""Peer apps serving the same endpoints, bodies and status codes as a rendered default service.

Each reads the rendered service's metadata document from BENCH_METADATA_FILE, so every app answers
/v1/metadata with the same JSON.
"""
