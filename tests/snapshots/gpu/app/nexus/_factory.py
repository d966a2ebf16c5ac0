# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""create_app: settings, logging, readiness, probes and the service's handlers, assembled once."""

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from types import ModuleType

import msgspec
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import ImproperlyConfiguredException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, SwaggerRenderPlugin

from app.nexus import _identity as identity
from app.nexus._asgi import NexusASGI
from app.nexus._capabilities import BACKEND, implementations
from app.nexus._checks import platform_checks
from app.nexus._config import ConfigError, PlatformSettings, load_settings, redacted, secret_values
from app.nexus._content import check_json_body
from app.nexus._context import NexusContext
from app.nexus._errors import EXCEPTION_HANDLERS
from app.nexus._features import gpu_inventory, gpu_metrics, registrar
from app.nexus._logs import configure_logging, timestamp
from app.nexus._metadata import (
    API_VERSION,
    SCHEMA_VERSION,
    BuildInfo,
    Links,
    Metadata,
    Model,
    route_endpoints,
)
from app.nexus._metrics import HttpMetrics, Metrics
from app.nexus._models import ModelCatalog
from app.nexus._observe import Observer, platform_collector
from app.nexus._openapi import document_api
from app.nexus._probes import Probes, probe_handlers
from app.nexus._readiness import Readiness
from app.nexus._spec import ServiceSpec
from app.nexus.openai._proxy import no_backend_check
from app.nexus.openai._routes import capability_handlers, capability_models

logger = logging.getLogger("nexus")

# the Swagger UI release OPENAPI_VIEWER=swagger loads, pinned
SWAGGER_UI_VERSION = "5.18.2"


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


def _openapi_pages(viewer: str) -> list[OpenAPIRenderPlugin]:
    """The document at /schema and /schema/openapi.json; a viewer page only when asked for: its scripts
    come from a public CDN, which fails on air-gapped clusters (docs/service-api.md)."""
    pages: list[OpenAPIRenderPlugin] = [JsonRenderPlugin(path=["/", "/openapi.json"])]
    if viewer == "swagger":
        pages.append(SwaggerRenderPlugin(version=SWAGGER_UI_VERSION, favicon=""))
    return pages


def create_app(service: ServiceSpec, environ: Mapping[str, str] | None = None) -> NexusASGI:
    """Build the app; raises ConfigError when the environment or release/service.env is invalid."""
    if identity.FACTS_ERROR:
        raise ConfigError(identity.FACTS_ERROR)
    settings = load_settings(PlatformSettings, environ)
    service_settings = load_settings(service.settings, environ) if service.settings else None
    access_log = configure_logging(
        settings.log_level,
        buffer_bytes=settings.log_buffer_bytes,
        secrets=secret_values(settings, service_settings),
    )
    capabilities = implementations(service.route_handlers)
    context = NexusContext(settings=settings, service_settings=service_settings)
    # registrar and gpu_metrics are None in a service rendered without the feature
    registration = registrar(context) if registrar is not None else None
    checks = platform_checks(context)
    if BACKEND == "openai" and not settings.backend_url:
        checks["backend:responseTime"] = no_backend_check
    if registration is not None and registration.enabled:
        checks[registration.check_name] = registration.check
    readiness = Readiness(
        {**checks, **service.readiness_checks},
        context,
        timeout=settings.readiness_timeout_seconds,
        cache_seconds=settings.readiness_cache_seconds,
    )
    if registration is not None:
        registration.follow(readiness)
    catalog = ModelCatalog(
        capability_models(service.models, capabilities),
        context,
        cache_seconds=service.models_cache_seconds,
        timeout=settings.backend_timeout_seconds,
    )
    metrics = Metrics(HttpMetrics(), [readiness.families]) if settings.metrics_enabled else None
    gpus = None
    if gpu_metrics is not None and metrics is not None:
        gpus = gpu_metrics(settings)
        metrics.add(gpus.families)
    probes = Probes(readiness, catalog, metrics)

    @asynccontextmanager
    async def platform_lifespan(app: Litestar) -> AsyncIterator[None]:
        context.running = True
        context.started_at = timestamp(time.time())
        document_api(app)
        metadata = _metadata(app, context, catalog.models)
        probes.publish(metadata)

        def republish(**changes: object) -> None:
            nonlocal metadata
            metadata = msgspec.structs.replace(metadata, **changes)
            probes.publish(metadata)

        catalog.on_change = lambda models: republish(models=models)
        logger.info("service starting", extra={"settings": redacted(settings), "checks": readiness.names})
        if gpus is not None:
            gpus.start()
        loop = asyncio.get_running_loop()
        access_log.writer.attach(loop)
        try:
            async with AsyncExitStack() as stack:
                if service.lifespan is not None:
                    await stack.enter_async_context(service.lifespan(context))
                if registration is not None:  # after the service is set up; revoked before its teardown
                    # the metadata shows the registration state as it changes
                    registration.on_change = lambda: republish(registration=registration.info())
                    registration.on_change()
                    await stack.enter_async_context(registration.running())
                # the first model list, in the background once the service's backends are set up
                prefetch = asyncio.ensure_future(catalog.answer()) if catalog.dynamic else None
                yield
                if prefetch is not None:
                    prefetch.cancel()
        finally:
            access_log.writer.detach(loop)  # first: whatever happens below, the thread writes again
            if gpus is not None:
                gpus.stop()
            await context.close_http()
            context.blocking.close()
            context.running = False
            logger.info("service stopped")

    try:
        litestar = _litestar(service, settings, context, probes, platform_lifespan, capabilities)
    except ImproperlyConfiguredException as error:
        raise ConfigError(
            f"{error}: the platform serves /health, /readyz, /v1/metadata and /v1/models "
            "(a changing model list is ServiceSpec.models = an async provider)"
        ) from None
    missing = set(probes.routes()) - {route.path for route in litestar.routes}
    if missing:
        raise ConfigError(f"an on_app_init hook removed the platform routes {sorted(missing)}")
    observer = Observer(
        access_log,
        metrics.http if metrics is not None else None,
        tracing=settings.tracing_enabled,
        trace_header=bool(service.middleware),
    )
    app = NexusASGI(
        litestar,
        context,
        probes.routes(),
        observer,
        max_concurrent_requests=settings.max_concurrent_requests,
        request_timeout_seconds=settings.request_timeout_seconds,
        max_header_bytes=settings.max_header_bytes,
        stream_idle_timeout_seconds=settings.stream_idle_timeout_seconds,
        stream_max_seconds=settings.stream_max_seconds,
        body_timeout_seconds=settings.body_timeout_seconds,
        min_body_bytes_per_second=settings.min_body_bytes_per_second,
    )
    if metrics is not None:
        build = {
            "service": settings.service_name,
            "version": settings.service_version,
            "template_version": identity.TEMPLATE_VERSION,
            "git_sha": settings.git_sha,
        }
        metrics.add(platform_collector(app, access_log.writer, registration, build))
    return app


def _litestar(
    service: ServiceSpec,
    settings: PlatformSettings,
    context: NexusContext,
    probes: Probes,
    platform_lifespan: Callable[[Litestar], AbstractAsyncContextManager[None]],
    capabilities: dict[str, ModuleType],
) -> Litestar:
    return Litestar(
        route_handlers=[
            *probe_handlers(probes),
            *capability_handlers(capabilities),
            *service.route_handlers,
        ],
        lifespan=[platform_lifespan],
        state=State({"nexus": context}),
        # handlers may also take `nexus: NamedDependency[NexusContext]` (resolved only where asked for)
        dependencies={"nexus": Provide(lambda: context, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=check_json_body,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title=settings.service_name,
            version=settings.service_version,
            description=identity.DESCRIPTION,
            render_plugins=_openapi_pages(settings.openapi_viewer),
        ),
        middleware=list(service.middleware),
        logging_config=None,
        plugins=list(service.plugins),
        on_app_init=list(service.on_app_init),
        debug=False,
    )


def create_app_or_exit(service: ServiceSpec) -> NexusASGI:
    """create_app for entrypoints: an invalid setting ends the process with one line and status 2."""
    try:
        return create_app(service)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
