"""The HTTP API and dashboard: ``/lag``, ``/status``, ``/metrics``, ``/health/*``, ``/dashboard``."""

from hub.api.app import create_app

__all__ = ["create_app"]
