"""The instance's remote desktop: TigerVNC's Xvnc on a private unix socket, proxied by jupyter-server-proxy.

- :mod:`.config`   the knobs (``c.VisaDesktop.*``) and the launcher's spec
- :mod:`.launch`   the process jupyter-server-proxy supervises: Xvnc plus a light session
- :mod:`.sessionfiles` the session's configuration (panel, menus, window manager, terminal), written at start
- :mod:`.applications` the applications (XDG desktop entries) for the menus, launcher bar and Lab launcher
- :mod:`.keyboard` the keyboard layout (XKB) and her saved choice
- :mod:`.handlers` the full-control and view-only websockets and the status API
- :mod:`.api`      the Desktop tab's workstation API: keyboard, applications, the desktop folder
- :mod:`.rfb`      the view-only filter (pure)
- :mod:`.xauth`    the X display's cookie (pure)
"""

from .handlers import DESKTOP_RESOURCE, FULL_PATH, VIEW_ONLY_PATH, setup_desktop

__all__ = ["DESKTOP_RESOURCE", "FULL_PATH", "VIEW_ONLY_PATH", "setup_desktop"]
