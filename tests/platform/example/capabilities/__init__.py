"""Deterministic implementations of the OpenAI capabilities, as a service's app/capabilities/ holds them."""
