"""`python -m tests.platform.example`: the example service served as `python -m app` serves one."""

from nexus_platform import create_app_or_exit, serve

from tests.platform.example.main import IDENTITY, service

serve(create_app_or_exit(service, IDENTITY))
