"""A small service for the platform's tests: its own endpoints (main.py) and an implementation of each
OpenAI capability the platform serves (capabilities/), found through `Identity.package`."""
