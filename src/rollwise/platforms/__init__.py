"""Platforms that carry out the engine's plans: the local one (processes on one machine) and Kubernetes."""
