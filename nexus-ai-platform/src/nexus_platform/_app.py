"""create_app: settings, logging, readiness, probes and the service's handlers, assembled once."""

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING

import msgspec
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import ImproperlyConfiguredException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, SwaggerRenderPlugin

from nexus_platform._config.facts import FactsError, ServiceFacts, read_facts
from nexus_platform._config.settings import (
    FEATURE_ANSWERS,
    ConfigError,
    PlatformSettings,
    env_name,
    feature_of,
    load_settings,
    redacted,
    secret_values,
)
from nexus_platform._context import NexusContext
from nexus_platform._edge.access import Access
from nexus_platform._edge.asgi import NexusASGI
from nexus_platform._edge.observe import Observer, platform_collector
from nexus_platform._http.content import check_json_body
from nexus_platform._http.errors import EXCEPTION_HANDLERS
from nexus_platform._http.openapi import document_api
from nexus_platform._identity import Identity
from nexus_platform._observability.generation import LlmMetrics
from nexus_platform._observability.logs import configure_logging, timestamp
from nexus_platform._observability.metrics import HttpMetrics, Metrics
from nexus_platform._probes.checks import platform_checks
from nexus_platform._probes.metadata import (
    API_VERSION,
    SCHEMA_VERSION,
    BuildInfo,
    GpuInfo,
    Links,
    Metadata,
    Model,
    route_endpoints,
)
from nexus_platform._probes.models import ModelCatalog
from nexus_platform._probes.probes import Probes, probe_handlers
from nexus_platform._probes.readiness import Readiness, ReadinessCheck
from nexus_platform._sizing import PLAIN
from nexus_platform._spec import ServiceSpec
from nexus_platform.openai._capabilities import implementations
from nexus_platform.openai._proxy import no_backend_check
from nexus_platform.openai._routes import capability_handlers, capability_models

if TYPE_CHECKING:
    from nexus_platform._gpu import GpuMetrics
    from nexus_platform._registration.registrar import Registrar

logger = logging.getLogger("nexus")

# the Swagger UI release OPENAPI_VIEWER=swagger loads, pinned
SWAGGER_UI_VERSION = "5.18.2"


def _metadata(app: Litestar, context: NexusContext, models: list[Model]) -> Metadata:
    settings, identity, facts = context.settings, context.identity, context.facts
    return Metadata(
        schema_version=SCHEMA_VERSION,
        name=settings.service_name,
        version=settings.service_version,
        description=facts.service_description,
        api_version=API_VERSION,
        owner=facts.service_owner,
        capabilities=list(facts.service_capabilities),
        endpoints=route_endpoints(app),
        models=models,
        gpu=identity.gpu,
        gpu_info=_gpu_inventory() if identity.gpu else None,
        registration=None,
        instance_id=context.instance_id,
        started_at=context.started_at,
        build=BuildInfo(
            git_sha=settings.git_sha or None,
            build_time=settings.build_time or None,
            template_version=identity.template_version,
        ),
        links=Links(),
    )


def _settings(identity: Identity, facts: ServiceFacts, environ: Mapping[str, str] | None) -> PlatformSettings:
    """The platform settings: the environment over the identity's defaults. A setting of a feature the
    service was rendered without, set to anything but its default, is refused, not ignored."""
    settings = load_settings(
        PlatformSettings,
        environ,
        {**identity.setting_defaults(facts.service_capabilities), "service_version": facts.service_version},
    )
    refused = [
        f"{env_name(field.name)}: this service was rendered without {feature} (the template answer "
        f"{FEATURE_ANSWERS[feature]}); remove the variable"
        for field in msgspec.structs.fields(PlatformSettings)
        if (feature := feature_of(field)) not in {"", *identity.features}
        and getattr(settings, field.name) != field.default
    ]
    if refused:
        raise ConfigError("; ".join(refused))
    if settings.etcd_url and not settings.service_base_url:
        raise ConfigError("SERVICE_BASE_URL: required when ETCD_URL is set (the address other hosts use)")
    return settings


def _gpu_inventory() -> GpuInfo | None:
    from nexus_platform._gpu import inventory  # NVML (the gpu extra) is imported only by GPU services

    return inventory()


def _gpu_count_check(minimum: int) -> ReadinessCheck:
    from nexus_platform._gpu import gpu_count_check

    return gpu_count_check(minimum)


def _gpu_metrics(settings: PlatformSettings) -> "GpuMetrics":
    from nexus_platform._gpu import GpuMetrics

    return GpuMetrics(settings.gpu_metrics_interval_seconds)


def _registrar(context: NexusContext) -> "Registrar":
    from nexus_platform._registration.config import check_registration
    from nexus_platform._registration.registrar import Registrar

    check_registration(context.settings)
    return Registrar(context)


def _openapi_pages(viewer: str) -> list[OpenAPIRenderPlugin]:
    """The document at /schema and /schema/openapi.json; a viewer page only when asked for: its scripts
    come from a public CDN, which fails on air-gapped clusters (docs/service-api.md)."""
    pages: list[OpenAPIRenderPlugin] = [JsonRenderPlugin(path=["/", "/openapi.json"])]
    if viewer == "swagger":
        pages.append(SwaggerRenderPlugin(version=SWAGGER_UI_VERSION, favicon=""))
    return pages


def create_app(
    service: ServiceSpec, identity: Identity, environ: Mapping[str, str] | None = None
) -> NexusASGI:
    """Build the app of `service` as `identity` says it was rendered; raises ConfigError when the
    environment or release/service.env is invalid."""
    try:
        facts = read_facts(identity.facts_file)
    except FactsError as error:
        raise ConfigError(str(error)) from None
    settings = _settings(identity, facts, environ)
    try:
        access = Access(settings, service.authorize)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    service_settings = load_settings(service.settings, environ) if service.settings else None
    access_log = configure_logging(
        settings.log_level,
        buffer_bytes=settings.log_buffer_bytes,
        secrets=secret_values(settings, service_settings),
    )
    capabilities = implementations(
        service.route_handlers, facts.service_capabilities, identity.backend, identity.package
    )
    context = NexusContext(
        settings=settings, identity=identity, facts=facts, service_settings=service_settings
    )
    registration = _registrar(context) if identity.registration else None
    readiness = _readiness(service, context, registration)
    catalog = ModelCatalog(
        capability_models(service.models, capabilities),
        context,
        cache_seconds=service.models_cache_seconds,
        # a model list is no generation: the plain bound, whatever the workload's
        timeout=min(settings.backend_timeout_seconds, PLAIN.backend_timeout_seconds),
    )
    metrics = Metrics(HttpMetrics(), [readiness.families]) if settings.metrics_enabled else None
    context.metrics = metrics
    if metrics is not None and capabilities:
        context.llm_metrics = LlmMetrics(lambda: catalog.ids)
        metrics.add(context.llm_metrics.families)
    gpus = None
    if identity.gpu and metrics is not None:
        gpus = _gpu_metrics(settings)
        metrics.add(gpus.families)
    probes = Probes(readiness, catalog, metrics)
    lifespan = _Lifespan(service, context, probes, catalog, readiness, registration, gpus, access)
    try:
        litestar = _litestar(service, settings, context, probes, lifespan, capabilities)
    except ImproperlyConfiguredException as error:
        taken = [path for path in probes.routes() if f"'{path}'" in str(error)]
        hint = (
            f": the platform serves {', '.join(taken)} itself (a changing model list is ServiceSpec.models = "
            "an async provider)"
            if taken and "already registered" in str(error)
            else ""
        )
        raise ConfigError(f"{error.detail}{hint}") from None
    missing = set(probes.routes()) - {route.path for route in litestar.routes}
    if missing:
        raise ConfigError(f"an on_app_init hook removed the platform routes {sorted(missing)}")
    observer = Observer(
        access_log,
        metrics.http if metrics is not None else None,
        tracing=settings.tracing_enabled,
        trace_header=bool(service.middleware),
        llm=context.llm_metrics,
    )
    app = NexusASGI(litestar, context, probes.routes(), observer, access)
    if metrics is not None:
        build = {
            "service": settings.service_name,
            "version": settings.service_version,
            "template_version": identity.template_version,
            "git_sha": settings.git_sha,
        }
        metrics.add(platform_collector(app, access_log.lines, registration, build))
    return app


def _readiness(service: ServiceSpec, context: NexusContext, registration: "Registrar | None") -> Readiness:
    """The platform's checks (the backend's, the registration's), then the service's own."""
    settings = context.settings
    checks = platform_checks(context)
    if context.identity.gpu and settings.gpu_min_count > 0:  # GPU_MIN_COUNT=0: readiness ignores GPUs
        checks["gpu:count"] = _gpu_count_check(settings.gpu_min_count)
    if context.identity.backend == "openai" and not settings.backend_url:
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
    return readiness


class _Lifespan:
    """The platform's lifespan around the service's: the metadata document once every route is known,
    the GPU sampler, the registration, the first model list; on the way out, the HTTP client and the
    blocking pool close after the service's own teardown."""

    def __init__(
        self,
        service: ServiceSpec,
        context: NexusContext,
        probes: Probes,
        catalog: ModelCatalog,
        readiness: Readiness,
        registration: "Registrar | None",
        gpus: "GpuMetrics | None",
        access: Access,
    ) -> None:
        self.service, self.context, self.probes, self.catalog = service, context, probes, catalog
        self.readiness, self.registration, self.gpus = readiness, registration, gpus
        self.access = access
        self.metadata: Metadata | None = None

    def republish(self, **changes: object) -> None:
        """Publish the metadata document again with `changes` (models, registration)."""
        assert self.metadata is not None, "published at start-up"
        self.metadata = msgspec.structs.replace(self.metadata, **changes)
        self.probes.publish(self.metadata)

    @asynccontextmanager
    async def __call__(self, app: Litestar) -> AsyncIterator[None]:
        context, catalog, registration = self.context, self.catalog, self.registration
        context.running = True
        context.started_at = timestamp(time.time())
        document_api(app, secured=bool(self.access.keys))
        self.metadata = _metadata(app, context, catalog.models)
        self.probes.publish(self.metadata)
        catalog.on_change = lambda models: self.republish(models=models)
        logger.info(
            "service starting",
            extra={
                "settings": redacted(context.settings, context.identity.features),
                "checks": self.readiness.names,
            },
        )
        if self.access.unauthenticated:
            logger.warning(
                "serving without API keys on %s (ALLOW_UNAUTHENTICATED=true): anyone who reaches the port "
                "gets in",
                context.settings.service_host,
            )
        if self.gpus is not None:
            self.gpus.start()
        try:
            async with AsyncExitStack() as stack:
                if self.service.lifespan is not None:
                    await stack.enter_async_context(self.service.lifespan(context))
                if registration is not None:  # after the service is set up; revoked before its teardown
                    # the metadata shows the registration state as it changes
                    registration.on_change = lambda: self.republish(registration=registration.info())
                    registration.on_change()
                    await stack.enter_async_context(registration.running())
                # the first model list, in the background once the service's backends are set up
                prefetch = asyncio.ensure_future(catalog.answer()) if catalog.dynamic else None
                yield
                if prefetch is not None:
                    prefetch.cancel()
        finally:
            if self.gpus is not None:
                self.gpus.stop()
            await context.close_http()
            context.blocking.close()
            context.running = False
            logger.info("service stopped")


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
            *capability_handlers(capabilities, strict=settings.strict_openai_fields),
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
            description=context.facts.service_description,
            render_plugins=_openapi_pages(settings.openapi_viewer),
        ),
        middleware=list(service.middleware),
        logging_config=None,
        plugins=list(service.plugins),
        on_app_init=list(service.on_app_init),
        debug=False,
    )


def create_app_or_exit(service: ServiceSpec, identity: Identity) -> NexusASGI:
    """create_app for entrypoints: an invalid setting ends the process with one line and status 2."""
    try:
        return create_app(service, identity)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
