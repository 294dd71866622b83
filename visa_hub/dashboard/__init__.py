"""The instance dashboard: the hub's home page lists a person's instances (JupyterHub named servers).

- The page is ``visa_hub/templates/home.html`` with ``visa_hub/look/static/dashboard.js``.
- Its data: :mod:`visa_hub.dashboard.api` (``{hub}/hub/api/visa/users/<name>/instances``), JupyterHub's REST API
  (start, stop) and its progress event stream.
"""

from __future__ import annotations

from typing import Any

from .api import ROUTES

__all__ = ["ROUTES", "configure_dashboard"]


def configure_dashboard(c: Any) -> None:
    """Named servers (several instances per person), the dashboard as landing page, and its API."""
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.redirect_to_server = False  # after login: the dashboard, not the first server
    c.JupyterHub.extra_handlers.extend(ROUTES)
