"""visa-hub's own hub pages, served by JupyterHub itself (``c.JupyterHub.extra_handlers``).

- ``{hub}/hub/visa/relaunch/<user>/<server_name>``: confirm, then stop the instance and start it again with the
  same settings (the ``user_options`` JupyterHub keeps for the server); then its progress page.
- ``{hub}/hub/visa/stop/<user>/<server_name>``: confirm, then stop the instance; then the hub's home page.

``<server_name>`` is empty for the default server (``.../relaunch/alice/``; ``.../relaunch/alice`` works too).
Only the owner (or whoever holds the ``servers`` scope on that server, e.g. an admin) may act; others get 403.
"""

from __future__ import annotations

from pathlib import Path

from .actions import ACTION_ROUTES, action_url

TEMPLATES = Path(__file__).parent / "templates"

__all__ = ["ACTION_ROUTES", "TEMPLATES", "action_url", "configure_hub_pages"]


def configure_hub_pages(c) -> None:
    """Register the pages and their template directory on a JupyterHub config object ``c``."""
    # extend/append work on a list already set and on traitlets' lazy value of an unset one
    c.JupyterHub.extra_handlers.extend(ACTION_ROUTES)
    c.JupyterHub.template_paths.append(str(TEMPLATES))
