"""The Kubernetes platform: a kopf controller (lightkube client) that carries out the engine's plan
with ReplicaSets, Services and a router (Istio, Gateway API, NGINX Ingress)."""
