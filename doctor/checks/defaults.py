"""The registry of every shipped check, built explicitly rather than on import."""

from __future__ import annotations

from doctor.checks import CheckRegistry, config, identity, symptoms, traffic


def default_registry() -> CheckRegistry:
    registry = CheckRegistry()
    symptoms.register(registry)
    traffic.register(registry)
    config.register(registry)
    identity.register(registry)
    return registry
