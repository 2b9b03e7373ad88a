"""Mesh Doctor: diagnose API security failures in Istio/Envoy service meshes."""

__version__ = "0.1.0"
