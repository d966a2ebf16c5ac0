"""A setting of a feature the service was rendered without is refused at start-up, named, with the answer
that would bring the feature; with the feature, its own rules apply."""

from __future__ import annotations

import dataclasses

import pytest
from nexus_platform import ConfigError
from nexus_platform.testing import NexusService


def test_registration_settings_without_registration_are_refused_first(nexus_service: NexusService) -> None:
    assert not nexus_service.identity.registration
    with pytest.raises(ConfigError) as refused:
        nexus_service.create_app(environ={"ETCD_URL": "http://etcd:2379", "GPU_MIN_COUNT": "2"})
    assert str(refused.value) == (
        "ETCD_URL: this service was rendered without registration (the template answer etcd_registration); "
        "remove the variable; GPU_MIN_COUNT: this service was rendered without gpu (the template answer "
        "gpu); remove the variable"
    )


def test_a_missing_features_variable_empty_or_at_its_default_is_accepted(nexus_service: NexusService) -> None:
    """A fleet-wide environment may carry them: only a value that would change something is refused."""
    assert nexus_service.create_app(environ={"ETCD_URL": "", "GPU_MIN_COUNT": "0"}) is not None


def test_with_registration_its_own_rule_applies(nexus_service: NexusService) -> None:
    registering = dataclasses.replace(
        nexus_service, identity=dataclasses.replace(nexus_service.identity, registration=True)
    )
    with pytest.raises(ConfigError, match=r"^SERVICE_BASE_URL: required when ETCD_URL is set"):
        registering.create_app(environ={"ETCD_URL": "http://etcd:2379"})
