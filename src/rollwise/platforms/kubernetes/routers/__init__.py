"""Routers behind one protocol (see base.py); `router_for` picks the one a Rollout names."""
