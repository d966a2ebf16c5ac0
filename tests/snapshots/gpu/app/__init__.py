# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The service package: app.service is yours, app.main assembles it with the nexus-ai-platform library."""
