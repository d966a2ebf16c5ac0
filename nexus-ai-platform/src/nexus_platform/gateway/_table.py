"""The routing table: each known instance with what its /v1/metadata and /v1/models say, and the indexes
model -> instances, capability -> instances, service name -> instances (ready instances only).

An instance enters the table when it is found (an etcd key, a static URL) and becomes routable once its
metadata and model list are read with the gateway's service key; an etcd instance leaves the table the
moment its key goes. Every GATEWAY_REFRESH_SECONDS each instance is read again (a wrapper's models follow
its backend); a static instance is also asked /readyz then, and is routable only while that answers 200
(or 404: a server without the probe).
"""

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx
import msgspec

from nexus_platform._probes.metadata import Model

__all__ = ["Instance", "InstanceView", "RoutingTable"]

logger = logging.getLogger("nexus.gateway")


class _Metadata(msgspec.Struct):
    """The fields of /v1/metadata the gateway routes by."""

    name: str
    instance_id: str
    capabilities: list[str] = []


class _Listed(msgspec.Struct):
    """A model of an instance's /v1/models: the gateway sets `owned_by` (its service) itself."""

    id: str
    created: int = 0


class _Listing(msgspec.Struct):
    data: list[_Listed]


class InstanceView(msgspec.Struct):
    """An instance as GET /v1/gateway/instances shows it."""

    key: str
    service: str
    instance_id: str
    base_url: str
    routable: bool
    cooling: bool
    outstanding: int
    capabilities: list[str]
    models: list[str]


@dataclass(eq=False)
class Instance:
    key: str  # its etcd key, or its static URL
    base_url: str
    # what the etcd key says; empty for a static instance (its metadata says)
    expected_name: str = ""
    expected_id: str = ""
    static: bool = False
    name: str = ""
    instance_id: str = ""
    capabilities: list[str] = field(default_factory=list)
    models: list[Model] = field(default_factory=list)
    routable: bool = False
    # requests in flight through the gateway (the balancer's measure)
    outstanding: int = 0
    # time.monotonic() before which the instance gets requests only when no other can take them
    cool_until: float = 0.0

    @property
    def label(self) -> str:
        """How responses and metrics name it: <service>/<instance id>."""
        return f"{self.name}/{self.instance_id}"


class RoutingTable:
    def __init__(
        self, http: httpx.AsyncClient, headers: dict[str, str], own_name: str, owners: Mapping[str, str]
    ) -> None:
        self._http = http
        self._headers = headers
        self._own_name = own_name  # the gateway's own service: never an upstream (it would route to itself)
        self._owners = owners  # GATEWAY_MODEL_OWNERS: model -> the one service that serves it
        self._refused: set[tuple[str, str]] = set()  # (instance key, model) claims already logged
        self.instances: dict[str, Instance] = {}
        self.by_model: dict[str, list[Instance]] = {}
        self.by_service: dict[str, list[Instance]] = {}
        self.by_capability: dict[str, list[Instance]] = {}
        self.models: list[Model] = []

    def _index(self) -> None:
        by_model: dict[str, list[Instance]] = {}
        by_service: dict[str, list[Instance]] = {}
        by_capability: dict[str, list[Instance]] = {}
        owners: dict[str, Model] = {}
        for instance in sorted(self.instances.values(), key=lambda each: (each.name, each.key)):
            if not instance.routable:
                continue
            by_service.setdefault(instance.name, []).append(instance)
            for capability in instance.capabilities:
                by_capability.setdefault(capability, []).append(instance)
            for model in instance.models:
                if (owner := self._owners.get(model.id, instance.name)) != instance.name:
                    self._refuse(instance, model.id, owner)
                    continue
                by_model.setdefault(model.id, []).append(instance)
                owners.setdefault(model.id, model)  # owned by the first service (by name) that serves it
        self.by_model, self.by_service, self.by_capability = by_model, by_service, by_capability
        self._refused = {(key, model) for key, model in self._refused if key in self.instances}
        self.models = sorted(owners.values(), key=lambda model: model.id)

    def _refuse(self, instance: Instance, model: str, owner: str) -> None:
        if (instance.key, model) not in self._refused:
            self._refused.add((instance.key, model))
            logger.warning(
                "instance %s lists model %s, which GATEWAY_MODEL_OWNERS gives to %s: none of its requests go "
                "there",
                instance.label,
                model,
                owner,
            )

    async def update(self, found: Iterable[Instance]) -> None:
        """The instances are now exactly `found` (by key): gone ones leave at once, new ones are read
        (concurrently) and enter once they answer."""
        wanted = {instance.key: instance for instance in found}
        changed = [
            instance
            for key, instance in wanted.items()
            if (known := self.instances.get(key)) is None
            or (known.base_url, known.expected_id) != (instance.base_url, instance.expected_id)
        ]
        gone = self.instances.keys() - wanted.keys()
        for key in gone:
            logger.info("instance left", extra={"instance": self.instances.pop(key).label})
        if gone:
            self._index()
        for instance in changed:
            self.instances[instance.key] = instance
        if changed:
            await asyncio.gather(*(self._read(instance) for instance in changed))
            self._index()

    async def refresh(self, *, waiting_only: bool = False) -> None:
        """Read every instance again (metadata, models, and a static one's readiness), or only those that
        are not routable."""
        chosen = [each for each in self.instances.values() if not (waiting_only and each.routable)]
        if chosen:
            await asyncio.gather(*(self._read(instance) for instance in chosen))
            self._index()

    async def _read(self, instance: Instance) -> None:
        was = instance.routable
        await self._inspect(instance)
        if instance.routable != was:  # routed by at once, not once the slowest of the others answered
            self._index()

    async def _get(self, instance: Instance, path: str) -> httpx.Response:
        return await self._http.get(instance.base_url + path, headers=self._headers)

    async def _inspect(self, instance: Instance) -> None:
        was = instance.routable
        try:
            metadata = msgspec.json.decode(
                (await self._get(instance, "/v1/metadata")).content, type=_Metadata
            )
            models = await self._get(instance, "/v1/models")
            # 404: a server without the probe (not a Nexus service), whose metadata answered
            ready = not instance.static or (await self._get(instance, "/readyz")).status_code in (200, 404)
        except (httpx.HTTPError, httpx.InvalidURL, msgspec.DecodeError, ValueError) as error:
            instance.routable = False
            if was:
                logger.warning(
                    "instance unreachable: %s", type(error).__name__, extra={"instance": instance.key}
                )
            return
        mismatch = (instance.expected_name and metadata.name != instance.expected_name) or (
            instance.expected_id and metadata.instance_id != instance.expected_id
        )
        if mismatch:  # the address answers as another service: its registration is stale or forged
            logger.warning(
                "instance answers as another (%s)", metadata.name, extra={"instance": instance.key}
            )
            instance.routable = False
            return
        instance.name, instance.instance_id = metadata.name, metadata.instance_id
        instance.capabilities = metadata.capabilities
        if models.status_code == 200:
            try:
                listed = msgspec.json.decode(models.content, type=_Listing).data
                instance.models = [
                    Model(id=each.id, created=each.created, owned_by=metadata.name) for each in listed
                ]
            except msgspec.DecodeError:
                instance.models = []
        instance.routable = ready and metadata.name != self._own_name
        if instance.routable and not was:
            logger.info(
                "instance routable",
                extra={"instance": instance.label, "models": [model.id for model in instance.models]},
            )
