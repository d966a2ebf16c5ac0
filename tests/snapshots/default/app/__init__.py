# Managed by nexus-template: `copier update` replaces this file. Your code belongs in app/service.py.
"""The service package: app.nexus is the platform (template-owned), app.service is yours."""
