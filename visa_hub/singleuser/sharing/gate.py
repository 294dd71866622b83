"""Which routes of the server a visitor may reach, from her access. Pure.

The gate stands in front of every handler (it runs where the server learns who the visitor is), so routes
that never ask the authorizer — the Lab page, jupyter-server-proxy's ``proxy/`` routes, extensions — are
covered too. Everything a guest may reach is listed here; everything else needs Lab access.
"""

from __future__ import annotations

from ...sharing.roles import Access

#: Reachable by anyone JupyterHub lets in (leaving, finishing a login, asking "what am I here?").
ALWAYS = frozenset({"logout", "oauth_callback", "visa/api/sharing/me"})
#: The view-only desktop: the guest page, the desktop status and the view-only websocket.
DESKTOP_VIEW = frozenset({"visa/desktop-view", "visa/api/desktop"})
DESKTOP_VIEW_SOCKET = "visa-desktop-view/"
DESKTOP_CONTROL_SOCKET = "visa-desktop/"

LAB, DESKTOP, DESKTOP_VIEW_KIND = "lab", "desktop", "desktop-view"


def relative_path(path: str, base_url: str) -> str:
    """The request path below the server's base URL, without leading or trailing slashes."""
    if path.startswith(base_url):
        path = path[len(base_url):]
    elif path + "/" == base_url:
        path = ""
    return path.strip("/")


def connection_kind(rel: str) -> str:
    """What a websocket at ``rel`` is: the desktop with control, the view-only desktop, or part of Lab."""
    if (rel + "/").startswith(DESKTOP_CONTROL_SOCKET):
        return DESKTOP
    if (rel + "/").startswith(DESKTOP_VIEW_SOCKET):
        return DESKTOP_VIEW_KIND
    return LAB


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def may_reach(access: Access, rel: str, *, websocket: bool, method: str = "GET") -> bool:
    """Whether someone with ``access`` may open ``rel`` (a websocket if ``websocket``) with ``method``."""
    if rel in ALWAYS:
        return True
    kind = connection_kind(rel)
    if kind == DESKTOP:
        return access.desktop == "control"
    if kind == DESKTOP_VIEW_KIND or rel in DESKTOP_VIEW:
        return access.desktop is not None
    if not access.lab:
        return False
    # Lab's websockets (kernels, terminals, shared documents, events) carry changes, and so does every request
    # that is not a read: none while view only
    return access.lab_write or (not websocket and method.upper() in READ_METHODS)
