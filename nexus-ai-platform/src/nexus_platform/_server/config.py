"""The uvicorn configuration of `python -m app`: the guarded protocol, the open-files limit and TLS.

At start the soft limit on open files is raised to the hard limit (often 1024 → 1048576 in containers),
and connections are capped below it, so that running out of descriptors refuses new connections rather
than failing the ones already open, the backend client's and the log's.

With TLS_CERT_FILE and TLS_KEY_FILE the service serves HTTPS only (TLS 1.2 and later, Python's default
ciphers); with TLS_CLIENT_CA_FILE too, only to clients presenting a certificate that CA signed. The files
are read here, before anything listens, so that a missing or invalid one is a configuration error naming
its variable, not a traceback from inside uvicorn.
"""

import logging
import resource
import ssl

import uvicorn

from nexus_platform._compat import uvicorn_seconds
from nexus_platform._config.settings import ConfigError, PlatformSettings
from nexus_platform._edge.asgi import NexusASGI
from nexus_platform._server.protocol import ConnectionLimits, guarded_protocol

__all__ = ["open_files_limit", "tls_context", "uvicorn_config"]

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


def _no_password() -> bytes:
    # OpenSSL would otherwise ask for an encrypted key's password on the terminal, and wait
    return b""


def _tls_pairing(settings: PlatformSettings) -> list[str]:
    """The TLS variables set without the ones they need, one line each."""
    cert, key, client_ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    problems = []
    if cert and not key:
        problems.append("TLS_KEY_FILE: required when TLS_CERT_FILE is set (the certificate's private key)")
    if key and not cert:
        problems.append("TLS_CERT_FILE: required when TLS_KEY_FILE is set (the key's certificate)")
    if client_ca and not (cert and key):
        problems.append("TLS_CLIENT_CA_FILE: mutual TLS needs TLS_CERT_FILE and TLS_KEY_FILE too")
    if cert and key and settings.service_base_url.startswith("http://"):
        problems.append("SERVICE_BASE_URL: must start with https:// (this instance serves HTTPS only)")
    return problems


def tls_context(settings: PlatformSettings) -> ssl.SSLContext | None:
    """The server's TLS context from the TLS settings, None for plain HTTP; ConfigError (one line per
    variable) when they are incomplete or a file is unreadable or invalid. Never shows a key."""
    problems = _tls_pairing(settings)
    if problems:
        raise ConfigError("; ".join(problems))
    if not settings.tls_cert_file:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for variable, path in (
        ("TLS_CERT_FILE", settings.tls_cert_file),
        ("TLS_KEY_FILE", settings.tls_key_file),
    ):
        try:
            with open(path, "rb"):
                pass
        except OSError as error:
            problems.append(f"{variable}: cannot read {path}: {error.strerror}")
    if not problems:
        try:
            # the certificates on their own first, so that their error names their variable; in a context
            # of their own, which would trust them
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=settings.tls_cert_file)
        except ssl.SSLError:
            problems.append(f"TLS_CERT_FILE: {settings.tls_cert_file} holds no PEM certificate")
    if not problems:
        try:
            context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file, _no_password)
        except ssl.SSLError:
            problems.append(
                f"TLS_KEY_FILE: {settings.tls_key_file} is not the unencrypted PEM private key of the "
                "certificate in TLS_CERT_FILE"
            )
    if settings.tls_client_ca_file:
        problems += _client_ca_problems(context, settings.tls_client_ca_file)
    if problems:
        raise ConfigError("; ".join(problems))
    return context


def _client_ca_problems(context: ssl.SSLContext, path: str) -> list[str]:
    """Make `context` require client certificates signed by the CA certificates at `path`."""
    try:
        context.load_verify_locations(cafile=path)
    except OSError as error:
        message = error.strerror if not isinstance(error, ssl.SSLError) else "holds no PEM certificate"
        return [f"TLS_CLIENT_CA_FILE: {path}: {message}"]
    context.verify_mode = ssl.CERT_REQUIRED
    return []


def uvicorn_config(app: NexusASGI) -> uvicorn.Config:
    """uvicorn's configuration of `app`; ConfigError when the TLS settings are unusable."""
    settings = app.context.settings
    tls = tls_context(settings)
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
        # the context built and checked above (uvicorn would load the files again, and fail in a traceback)
        ssl_context_factory=None if tls is None else lambda config, default: tls,
    )
