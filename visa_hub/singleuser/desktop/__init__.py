"""The instance's remote desktop: TigerVNC's Xvnc on a private unix socket, proxied by jupyter-server-proxy.

- :mod:`.config`   the knobs (``c.VisaDesktop.*``) and the launcher's spec
- :mod:`.launch`   the process jupyter-server-proxy supervises: Xvnc plus a light session
- :mod:`.handlers` the full-control and view-only websockets and the status API
- :mod:`.rfb`      the view-only filter (pure)
- :mod:`.xauth`    the X display's cookie (pure)
"""

from .handlers import DESKTOP_RESOURCE, FULL_PATH, VIEW_ONLY_PATH, setup_desktop

__all__ = ["DESKTOP_RESOURCE", "FULL_PATH", "VIEW_ONLY_PATH", "setup_desktop"]
