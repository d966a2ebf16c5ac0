"""Development helpers for the maintainers of this repository (tests, demo, fuzz, format, benchmark).

Not part of the installable package: `pip install nexus-template` ships `nexus_template/` only.
Imported from the repository root (`python -m devtools.demo`, `from devtools.render import render`).
"""
