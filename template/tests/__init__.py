# Managed by nexus-template: `copier update` replaces this file.
