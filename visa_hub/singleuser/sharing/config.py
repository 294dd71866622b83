"""The knobs of a shared instance (``c.VisaSharing.*`` in the instance's Jupyter Server config)."""

from __future__ import annotations

from traitlets import Bool, Enum, Float
from traitlets.config import Configurable

from ...sharing.roles import LOCK, OWNER_AWAY_POLICIES


class VisaSharing(Configurable):
    """How this instance treats the people its owner shared it with."""

    enabled = Bool(
        True, config=True,
        help="Enforce visa-hub's sharing roles on this server (owner, collaborator, support, guest). When False, "
             "anyone JupyterHub lets in may do everything, as with JupyterHub's own authorizer.",
    )
    owner_away = Enum(
        list(OWNER_AWAY_POLICIES), LOCK, config=True,
        help="What happens to collaborators and support while the owner has no open connection: 'lock' (they "
             "only watch until she returns), 'disconnect' (everyone else is dropped and kept out) or 'open' "
             "(nothing changes). The owner changes it in the Session panel; this is the value at start.",
    )
    unrestricted = Bool(
        False, config=True,
        help="Start with 'unrestricted access': the others carry on as if the owner were there while she is away.",
    )
    away_grace = Float(
        3.0, config=True,
        help="Seconds the owner may be without any open connection before she counts as away (a page reload "
             "closes and reopens every connection).",
    )
    presence_interval = Float(
        1.0, config=True,
        help="Seconds between two looks at who is connected (owner presence, closing what a role no longer allows).",
    )
    recheck_interval = Float(
        3.0, config=True,
        help="Seconds between two readings of this server's shares from the hub while anyone but the owner is "
             "connected (a revoked share closes her open connections at the next reading).",
    )
    hub_cache_seconds = Float(
        5.0, config=True,
        help="How long the server trusts the hub's answers (a visitor's token: JupyterHub's HubAuth.cache_max_age, "
             "300 s by default; this server's shares) before asking again; short, so that a revoked share bites fast.",
    )
    viewers_refresh_interval = Float(
        300.0, config=True,
        help="This server tells the hub how many people are on its desktop, by role (the hub's visa_desktop_viewers "
             "metric), whenever that changes; while anyone is on it, it also tells again every this many seconds, "
             "so that a restarted hub has the numbers back.",
    )
