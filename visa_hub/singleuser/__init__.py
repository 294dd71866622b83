"""Jupyter Server extension running inside every visa-hub instance.

It serves the session information the labextension shows (``GET {base_url}visa/api/session``) and will host
the desktop proxy entry. It is enabled by ``jupyter-config/jupyter_server_config.d/visa_hub.json``, which the
wheel installs into ``etc/jupyter/jupyter_server_config.d/``.
"""

from __future__ import annotations

from typing import Any

from .handlers import setup_handlers


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where Jupyter Server finds this extension."""
    return [{"module": "visa_hub.singleuser"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register our handlers on the server's web application."""
    setup_handlers(serverapp.web_app)
    serverapp.log.info("visa-hub: session API at %svisa/api/session", serverapp.web_app.settings["base_url"])
