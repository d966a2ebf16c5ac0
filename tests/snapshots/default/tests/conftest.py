"""The service's own pytest fixtures and hooks. This file is yours: `copier update` never touches it.

The platform's fixtures (`client`, `make_client`, `live_service`, `nexus_service`) come from the
`nexus_platform.testing` plugin, which pyproject.toml loads; use them here and in your test modules. Your
pytest settings go here too, through pytest's hooks, for example:

    def pytest_configure(config):
        config.addinivalue_line("markers", "backend: needs the real backend (deselect with -m 'not backend')")
"""
