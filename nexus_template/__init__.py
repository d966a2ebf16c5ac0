"""Maintainer and platform tools around the nexus-template Copier template."""
