"""Jupyter Server extension running inside every visa-hub instance.

It gives the instance its own Dask configuration (:mod:`visa_hub.dask.instance`: ``DASK_CONFIG`` in the server's
environment, inherited by kernels and terminals, names this instance's directory; on every backend), proxies the
owner's Dask dashboards (``{base_url}visa-dask/<port>/``, see :mod:`visa_hub.singleuser.dask_dashboard`), serves the
session information the labextension shows (``GET {base_url}visa/api/session``) and the remote desktop
(``{base_url}visa-desktop/``, a jupyter-server-proxy raw socket entry to Xvnc, see
:mod:`visa_hub.singleuser.desktop`) with its workstation API (``{base_url}visa/api/desktop/...``: keyboard layout,
applications, the desktop folder), enforces the roles of the people its owner shares it with
(:mod:`visa_hub.singleuser.sharing`) and follows the session's expiry as the hub's sessions service moves it
(:mod:`visa_hub.singleuser.expiry`). It is enabled by ``jupyter-config/jupyter_server_config.d/visa_hub.json``,
which the wheel installs into ``etc/jupyter/jupyter_server_config.d/``.
"""

from __future__ import annotations

import sys
from typing import Any

from .activity import setup_activity
from .dask_dashboard import setup_dask_dashboards
from .desktop import setup_desktop
from .desktop.api import setup_desktop_api
from .expiry import setup_expiry
from .handlers import setup_handlers
from .lifetime import setup_lifetime
from .sharing import setup_sharing


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where Jupyter Server finds this extension."""
    return [{"module": "visa_hub.singleuser"}]


def _write_dask_config(serverapp: Any) -> None:
    """This instance's Dask profiles in dask's own configuration, before any kernel or terminal starts.

    ``DASK_CONFIG`` is set in this process's environment (kernels and terminals inherit it) to the instance's own
    directory: her other instances, which share her home, keep theirs.
    """
    from ..dask.instance import use_instance_config

    try:
        path = use_instance_config()
    except (OSError, ValueError) as exc:  # Lab works without Dask: say why in the log
        serverapp.log.error("visa-hub: could not write the Dask configuration: %s", exc)
        return
    if path is None:
        return
    if "dask" in sys.modules:  # e.g. dask-labextension loaded first: make it read this instance's directory
        import dask.config

        directory = str(path.parent)
        if directory not in dask.config.paths:
            dask.config.paths.append(directory)  # refresh() reads this list: last wins, as DASK_CONFIG would
        dask.config.PATH = directory
        dask.config.refresh()
    serverapp.log.info("visa-hub: Dask configuration of this instance in %s", path)


def _setup_apps(serverapp: Any) -> None:
    """The app API, desktop entries and provenance (:mod:`visa_hub.singleuser.apps`); never fatal for Lab."""
    from .apps import setup_apps

    try:
        setup_apps(serverapp)
    except Exception:
        serverapp.log.exception("visa-hub: the apps could not be set up")


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register our handlers on the server's web application."""
    _write_dask_config(serverapp)
    setup_handlers(serverapp.web_app)
    _setup_apps(serverapp)
    setup_lifetime(serverapp.web_app)
    setup_expiry(serverapp)
    serverapp.log.info("visa-hub: session API at %svisa/api/session", serverapp.web_app.settings["base_url"])
    setup_dask_dashboards(serverapp.web_app)
    try:
        state = setup_desktop(serverapp)
        setup_desktop_api(serverapp, state)
    except Exception:  # a broken desktop must not take the session API and Lab down with it
        serverapp.log.exception("visa-hub: the desktop could not be set up")
    else:
        serverapp.log.info("visa-hub: desktop at %svisa-desktop/", serverapp.web_app.settings["base_url"])
        setup_activity(serverapp, state)
    try:
        setup_sharing(serverapp)
    except Exception:  # a server that cannot enforce sharing roles must not run at all (Jupyter Server would
        serverapp.log.exception("visa-hub: sharing roles cannot be enforced; stopping")  # go on without us)
        serverapp.exit(1)
