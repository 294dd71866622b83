"""Member roles on an instance, the JupyterHub custom scopes that carry them, and what a role may do now.

A share is a JupyterHub share of one server whose scopes name the role (:func:`share_scopes`); JupyterHub pins
every scope of a share to that server (``!server=<owner>/<name>``). Inside the instance, the visitor's token
carries the same scopes back (:func:`role_from_scopes`) and :func:`access_for` says what she may do, given
whether the owner is connected and the owner's ``owner_away`` setting. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

OWNER, COLLABORATOR, SUPPORT, GUEST = "owner", "collaborator", "support", "guest"
#: Roles a share can give (the owner's is hers by starting the instance).
SHARE_ROLES = (COLLABORATOR, SUPPORT, GUEST)

SCOPE_LAB = "custom:visa:lab"
SCOPE_DESKTOP_CONTROL = "custom:visa:desktop-control"
SCOPE_DESKTOP_VIEW = "custom:visa:desktop-view"
SCOPE_SUPPORT = "custom:visa:support"

#: ``JupyterHub.custom_scopes``: declared once in the hub, granted only through shares.
CUSTOM_SCOPES: dict[str, dict[str, str]] = {
    SCOPE_LAB: {"description": "Use JupyterLab (files, kernels, terminals) on a shared visa-hub instance."},
    SCOPE_DESKTOP_CONTROL: {"description": "Use the remote desktop of a shared visa-hub instance with keyboard "
                                           "and mouse."},
    SCOPE_DESKTOP_VIEW: {"description": "Watch the remote desktop of a shared visa-hub instance (view only)."},
    SCOPE_SUPPORT: {"description": "Marks a share given to support staff after the owner accepted their request."},
}

ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    COLLABORATOR: (SCOPE_LAB, SCOPE_DESKTOP_CONTROL),
    SUPPORT: (SCOPE_LAB, SCOPE_DESKTOP_CONTROL, SCOPE_SUPPORT),
    GUEST: (SCOPE_DESKTOP_VIEW,),
}

#: What happens to the others while the owner has no open connection (VISA's owner disconnection policy).
LOCK, DISCONNECT, OPEN = "lock", "disconnect", "open"
OWNER_AWAY_POLICIES = (LOCK, DISCONNECT, OPEN)

ROLE_TITLES = {OWNER: "owner", COLLABORATOR: "collaborator", SUPPORT: "support", GUEST: "guest (view only)"}


def oauth_allowed_scopes() -> list[str]:
    """``Spawner.oauth_client_allowed_scopes``: the role scopes, each limited to the server itself."""
    return [f"{scope}!server" for scope in CUSTOM_SCOPES]


def server_filter(owner: str, server_name: str) -> str:
    return f"server={owner}/{server_name}"


def share_scopes(role: str, owner: str, server_name: str) -> list[str]:
    """The scopes of a share that makes someone ``role`` on ``owner``'s server ``server_name``."""
    if role not in ROLE_SCOPES:
        raise ValueError(f"not a role a share can give: {role!r} (one of {', '.join(SHARE_ROLES)})")
    target = server_filter(owner, server_name)
    return [f"access:servers!{target}", *(f"{scope}!{target}" for scope in ROLE_SCOPES[role])]


def _holds(scopes: set[str], scope: str, owner: str, server_name: str) -> bool:
    return bool({scope, f"{scope}!{server_filter(owner, server_name)}", f"{scope}!user={owner}"} & scopes)


def role_from_scopes(scopes: Iterable[str], owner: str, server_name: str) -> str | None:
    """The role a visitor's (expanded) token scopes give her on this server; ``None``: no role at all."""
    held = set(scopes)
    lab = _holds(held, SCOPE_LAB, owner, server_name)
    if lab and _holds(held, SCOPE_SUPPORT, owner, server_name):
        return SUPPORT
    if lab:
        return COLLABORATOR
    if _holds(held, SCOPE_DESKTOP_VIEW, owner, server_name):
        return GUEST
    return None


def role_from_share(scopes: Iterable[str]) -> str | None:
    """The role of a share as the hub lists it (scopes already pinned to its server)."""
    bases = {scope.partition("!")[0] for scope in scopes}
    for role in (SUPPORT, COLLABORATOR, GUEST):
        if set(ROLE_SCOPES[role]) <= bases:
            return role
    return None


@dataclass(frozen=True)
class Access:
    """What a visitor may do right now."""

    role: str | None
    lab: bool  # load Lab and read through the server's APIs
    lab_write: bool  # change files, run kernels and terminals, edit documents together
    desktop: str | None  # "control", "view" or None
    reason: str = ""  # why she may do less than her role gives (for people), "" when nothing is held back

    @property
    def anything(self) -> bool:
        return self.lab or self.desktop is not None


FULL = Access(OWNER, lab=True, lab_write=True, desktop="control")


def access_for(role: str | None, *, owner_present: bool, owner_away: str = LOCK,
               unrestricted: bool = False, owner: str = "the owner") -> Access:
    """What ``role`` may do now, with the owner connected or not and her ``owner_away`` setting.

    ``unrestricted``: the owner allowed the others to carry on as if she were there while she is away.
    """
    if owner_away not in OWNER_AWAY_POLICIES:
        raise ValueError(f"owner_away must be one of {', '.join(OWNER_AWAY_POLICIES)}, not {owner_away!r}")
    if role == OWNER:
        return FULL
    if role not in SHARE_ROLES:
        return Access(None, lab=False, lab_write=False, desktop=None,
                      reason=f"This instance belongs to {owner}; it is not shared with you.")
    away = not owner_present and not unrestricted and owner_away != OPEN
    if away and owner_away == DISCONNECT:
        return Access(role, lab=False, lab_write=False, desktop=None,
                      reason=f"{owner} is not connected, and nobody else may use the instance meanwhile.")
    if role == GUEST:
        return Access(GUEST, lab=False, lab_write=False, desktop="view",
                      reason="Guests watch the desktop only.")
    if away:  # lock
        return Access(role, lab=True, lab_write=False, desktop="view",
                      reason=f"{owner} is not connected: the session is view only until {owner} returns.")
    return Access(role, lab=True, lab_write=True, desktop="control")
