"""Operations: the operator console (``{hub}/hub/visa/ops``), the support role, and the hub's metrics.

- :mod:`.handlers` the console's page and JSON API; :mod:`.instances` its rows; :mod:`.status` the User Office
  and backend status sources; :mod:`.config` its settings (:class:`~.config.OperatorConsole`);
  :mod:`.lifetimes` the sessions service's expiries, extensions and requests on the same page (the service's
  own admin page sends operators here).
- Support staff (site role ``support`` from Keycloak or the User Office) are in the hub group
  ``visa-support`` (:data:`visa_hub.people.SUPPORT_GROUP`), which holds the ``visa-support`` role: they see the
  console and every instance, and may not stop, start or enter anyone's instance.
- :func:`configure_operations` also registers visa-hub's metrics that are computed at each scrape
  (:mod:`visa_hub.metrics`), and :mod:`.viewers` the hub API where instances report who is on their desktop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..people import SUPPORT_GROUP
from .handlers import ROUTES as PAGE_ROUTES
from .lifetimes import ROUTES as LIFETIME_ROUTES
from .viewers import ROUTES as VIEWER_ROUTES

ROUTES = [*PAGE_ROUTES, *LIFETIME_ROUTES, *VIEWER_ROUTES]

TEMPLATES = Path(__file__).parent / "templates"

#: What support staff may do on the hub: look at every user and instance (the console), nothing else.
SUPPORT_ROLE = {
    "name": "visa-support",
    "description": "Support staff: read-only view of every instance (visa-hub's operator console)",
    "scopes": ["list:users", "read:users", "read:users:activity", "read:servers", "read:groups"],
    "groups": [SUPPORT_GROUP],
}

__all__ = ["ROUTES", "SUPPORT_ROLE", "TEMPLATES", "configure_operations"]


def configure_operations(c: Any) -> None:
    """The console's routes and template, the support role, the metrics collector (additive)."""
    from ..metrics import configure_metrics

    c.JupyterHub.extra_handlers.extend(ROUTES)
    c.JupyterHub.template_paths.append(str(TEMPLATES))
    c.JupyterHub.load_roles.append(dict(SUPPORT_ROLE))
    configure_metrics(c)
