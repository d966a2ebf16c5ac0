"""The release version: the template's, which this library is released with (one place: hatch reads it)."""

__version__ = "0.4.2"
