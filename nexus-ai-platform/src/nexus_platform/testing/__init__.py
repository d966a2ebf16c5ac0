"""The Nexus service contract, as a pytest plugin a service runs against its own app.

A rendered service loads the plugin with `-p nexus_platform.testing` (its pyproject.toml) and runs the
contract from one template-owned file:

    from nexus_platform.testing import ContractTests

    class TestContract(ContractTests):
        '''The Nexus service contract, run against this service.'''

The plugin finds the service through its `app.main` module (`service` and `IDENTITY`; the `nexus_main` ini
option names another module) and gives every test module the fixtures `nexus_service` (that service),
`make_client(spec=None, identity=None, **environment)` and `client` (started TestClients of a freshly built
app, quiet logs) and `live_service(**environment)` (`python -m app` on a free port, stopped after the
test). pytest is needed only here: install the `testing` extra (`nexus-ai-platform[testing]`).
"""

from nexus_platform.testing._checks import assert_openai_error, json_lines
from nexus_platform.testing._contract import CONTRACT_PATH, ContractTests
from nexus_platform.testing._fixtures import (
    client,
    live_service,
    make_client,
    nexus_service,
    pytest_addoption,
    pytest_generate_tests,
)
from nexus_platform.testing._service import Client, LiveService, NexusService, free_port, load_service

__all__ = [
    "CONTRACT_PATH",
    "Client",
    "ContractTests",
    "LiveService",
    "NexusService",
    "assert_openai_error",
    "client",
    "free_port",
    "json_lines",
    "live_service",
    "load_service",
    "make_client",
    "nexus_service",
    "pytest_addoption",
    "pytest_generate_tests",
]
