"""The uvicorn configuration of `python -m app`: the guarded protocol and the open-files limit.

At start the soft limit on open files is raised to the hard limit (often 1024 → 1048576 in containers),
and connections are capped below it, so that running out of descriptors refuses new connections rather
than failing the ones already open, the backend client's and the log's.
"""

import logging
import resource

import uvicorn

from nexus_platform._compat import uvicorn_seconds
from nexus_platform._edge.asgi import NexusASGI
from nexus_platform._server.protocol import ConnectionLimits, guarded_protocol

__all__ = ["open_files_limit", "uvicorn_config"]

logger = logging.getLogger("nexus.server")

# descriptors kept for everything but client connections: the listener, the backend and etcd clients,
# logs, files the service opens; at least this many, or an eighth of the limit when that is more
_RESERVED_FILES = 64


def open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit when allowed; return (the soft limit found, in force)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard in (resource.RLIM_INFINITY, soft):
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as error:
        logger.warning("could not raise the open-files limit from %d to %d: %s", soft, hard, error)
        return soft, soft
    return soft, hard


def uvicorn_config(app: NexusASGI) -> uvicorn.Config:
    settings = app.context.settings
    found, files = open_files_limit()
    max_connections = max(1, files - max(_RESERVED_FILES, files // 8))
    logger.info(
        "open-files limit %d (was %d): at most %d client connections",
        files,
        found,
        max_connections,
        extra={"open_files_limit": files, "max_connections": max_connections},
    )
    limits = ConnectionLimits(
        idle_timeout=settings.idle_timeout_seconds,
        header_timeout=settings.header_timeout_seconds,
        max_head_bytes=settings.max_header_bytes,
        max_connections=max_connections,
    )
    return uvicorn.Config(
        app,
        host=settings.service_host,
        port=settings.service_port,
        http=guarded_protocol(limits),
        timeout_keep_alive=uvicorn_seconds(settings.idle_timeout_seconds),
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=uvicorn_seconds(settings.shutdown_grace_seconds),
        lifespan="on",
    )
