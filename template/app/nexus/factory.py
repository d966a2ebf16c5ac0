# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""create_app: settings, logging, readiness, probes and the service's handlers, assembled once."""

import logging
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import msgspec
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from app.nexus import identity
from app.nexus.asgi import NexusASGI
from app.nexus.capabilities import BACKEND, IMPLEMENTATIONS
from app.nexus.checks import platform_checks
from app.nexus.config import ConfigError, PlatformSettings, load_settings, redacted
from app.nexus.content import require_json_content_type
from app.nexus.context import NexusContext
from app.nexus.errors import EXCEPTION_HANDLERS
from app.nexus.features import gpu_inventory, registrar
from app.nexus.logs import configure_logging, timestamp
from app.nexus.metadata import (
    API_VERSION,
    SCHEMA_VERSION,
    BuildInfo,
    Links,
    Metadata,
    Model,
    route_endpoints,
)
from app.nexus.offload import BlockingPool
from app.nexus.openai.proxy import ModelCache, no_backend_check
from app.nexus.openai.routes import capability_handlers, capability_models
from app.nexus.openapi import document_api
from app.nexus.probes import Probes, probe_handlers
from app.nexus.readiness import Readiness
from app.nexus.spec import ServiceSpec

logger = logging.getLogger("nexus")


def _metadata(app: Litestar, context: NexusContext, models: list[Model]) -> Metadata:
    settings = context.settings
    return Metadata(
        schema_version=SCHEMA_VERSION,
        name=settings.service_name,
        version=settings.service_version,
        description=identity.DESCRIPTION,
        api_version=API_VERSION,
        owner=identity.OWNER,
        capabilities=list(identity.CAPABILITIES),
        endpoints=route_endpoints(app),
        models=models,
        gpu=identity.GPU,
        gpu_info=gpu_inventory(),
        registration=None,
        instance_id=context.instance_id,
        started_at=context.started_at,
        build=BuildInfo(
            git_sha=settings.git_sha or None,
            build_time=settings.build_time or None,
            template_version=identity.TEMPLATE_VERSION,
        ),
        links=Links(),
    )


def create_app(service: ServiceSpec, environ: Mapping[str, str] | None = None) -> NexusASGI:
    """Build the app; raises ConfigError when the environment holds invalid settings."""
    settings = load_settings(PlatformSettings, environ)
    service_settings = load_settings(service.settings, environ) if service.settings else None
    access_log = configure_logging(settings.log_level)
    context = NexusContext(settings=settings, service_settings=service_settings)
    context.blocking = BlockingPool(settings.max_concurrent_requests)
    registration = registrar(context)
    checks = platform_checks(context)
    if BACKEND == "openai" and not settings.backend_url:
        checks["backend:responseTime"] = no_backend_check
    if registration is not None and registration.enabled:
        checks["registration:etcd"] = registration.check
    readiness = Readiness(
        {**checks, **service.readiness_checks},
        context,
        timeout=settings.readiness_timeout_seconds,
        cache_seconds=settings.readiness_cache_seconds,
    )
    models = capability_models(service.models, IMPLEMENTATIONS)
    probes = Probes(readiness, models, ModelCache(context).answer if BACKEND == "openai" else None)

    @asynccontextmanager
    async def platform_lifespan(app: Litestar) -> AsyncIterator[None]:
        context.running = True
        context.started_at = timestamp(time.time())
        document_api(app)
        metadata = _metadata(app, context, models)
        probes.publish(metadata)
        logger.info("service starting", extra={"settings": redacted(settings), "checks": readiness.names})
        try:
            async with AsyncExitStack() as stack:
                if service.lifespan is not None:
                    await stack.enter_async_context(service.lifespan(context))
                if registration is not None:  # after the service is set up; revoked before its teardown
                    # the metadata shows the registration state as it changes
                    registration.on_change = lambda: probes.publish(
                        msgspec.structs.replace(metadata, registration=registration.info())
                    )
                    registration.on_change()
                    await stack.enter_async_context(registration.running())
                yield
        finally:
            await context.close_http()
            context.blocking.close()
            context.running = False
            logger.info("service stopped")

    litestar = Litestar(
        route_handlers=[
            *probe_handlers(probes),
            *capability_handlers(IMPLEMENTATIONS, service.route_handlers),
            *service.route_handlers,
        ],
        lifespan=[platform_lifespan],
        state=State({"nexus": context}),
        # handlers may also take `nexus: NamedDependency[NexusContext]` (resolved only where asked for)
        dependencies={"nexus": Provide(lambda: context, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=require_json_content_type,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title=settings.service_name, version=settings.service_version, description=identity.DESCRIPTION
        ),
        logging_config=None,
        debug=False,
    )
    return NexusASGI(
        litestar,
        context,
        probes.routes(),
        access_log,
        max_concurrent_requests=settings.max_concurrent_requests,
        request_timeout_seconds=settings.request_timeout_seconds,
        max_header_bytes=settings.max_header_bytes,
        stream_idle_timeout_seconds=settings.stream_idle_timeout_seconds,
        stream_max_seconds=settings.stream_max_seconds,
    )


def create_app_or_exit(service: ServiceSpec) -> NexusASGI:
    """create_app for entrypoints: an invalid setting ends the process with one line and status 2."""
    try:
        return create_app(service)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
