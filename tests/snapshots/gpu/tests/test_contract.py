# Managed by nexus-template: `copier update` replaces this file. Your tests belong in tests/test_service.py.
"""The Nexus service contract, run against this service by the platform (nexus_platform.testing)."""

from nexus_platform.testing import ContractTests


class TestContract(ContractTests):
    """Probes, metadata, OpenAI errors, request ids, limits, the OpenAI capabilities release/service.env
    offers, the lock and .env.example: what every Nexus service promises, checked on this one's app."""
