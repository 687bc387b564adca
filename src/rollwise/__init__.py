"""Rollwise: progressive delivery for Kubernetes and for one machine."""

__version__ = "0.1.0"
