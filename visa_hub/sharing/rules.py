"""Whom an owner may share her instance with, as what, and for how long. Pure: facts in, decisions out.

JupyterHub lets anyone with the ``shares`` scope share with anyone, and direct shares never expire; visa-hub's
sessions service applies these rules before it grants a share, and again while the share lasts:

- **collaborator**: a member of the instance's experiment in the User Office (a member who is removed loses it);
- **support**: facility staff (site role ``support``, ``staff`` or ``admin``) who asked, and only after the owner
  accepted the request; for a limited time (:func:`support_expiry`), every join audited;
- **guest**: anyone with an account the owner names: the view-only desktop and nothing else.

Every refusal is a sentence for the person who asked.
"""

from __future__ import annotations

import datetime as dt

from ..people import ADMIN, STAFF, Person
from ..people import SUPPORT as SUPPORT_ROLE
from .roles import COLLABORATOR, GUEST, SHARE_ROLES, SUPPORT

#: Site roles that may ask to support an instance.
SUPPORT_STAFF_ROLES = frozenset({SUPPORT_ROLE, STAFF, ADMIN})


def display(person: Person | None, username: str) -> str:
    return f"{person.name} ({username})" if person and person.name and person.name != username else username


def is_member(person: Person | None, experiment: str) -> bool:
    """A member of the experiment in the User Office (principal investigator, co-proposer, local contact)."""
    return person is not None and bool(experiment) and person.experiment(experiment) is not None


def is_support_staff(person: Person | None) -> bool:
    return person is not None and bool(SUPPORT_STAFF_ROLES & set(person.roles))


def share_refusal(role: str, *, owner: str, username: str, person: Person | None, experiment: str,
                  via_request: bool = False) -> str | None:
    """Why ``owner`` may not make ``username`` (``person`` as the User Office knows her) ``role``; None: she may."""
    if username == owner:
        return "This is your own instance: you have every right on it already."
    if role not in SHARE_ROLES:
        return f"{role!r} is not a role to share with: choose collaborator or guest."
    who = display(person, username)
    if role == SUPPORT and not via_request:
        return (f"Support staff join on request: {who} asks for access from the support page, and you accept "
                "it as support or as guest.")
    if role == SUPPORT and not is_support_staff(person):
        return f"{who} is not facility support staff, so cannot join as support."
    if role == COLLABORATOR and not is_member(person, experiment):
        return (f"{who} is not a member of experiment {experiment or '(none)'} in the User Office, so cannot be a "
                "collaborator. Share as guest (view-only desktop), or ask the User Office to add them to the "
                "proposal.")
    return None


def keeps_share(role: str, person: Person | None, experiment: str) -> bool:
    """Whether a share still holds for the person as the User Office knows her now."""
    if role == COLLABORATOR:
        return is_member(person, experiment)
    if role == SUPPORT:
        return is_support_staff(person)
    return role == GUEST


def support_request_refusal(person: Person | None, username: str, *, owner: str, experiment: str,
                            may_support: bool) -> str | None:
    """Why ``username`` may not ask to support ``owner``'s instance; None: she may ask."""
    if username == owner:
        return "This is your own instance."
    if not is_support_staff(person):
        return "Only facility support staff can ask to join someone's instance as support."
    if not may_support:
        return (f"You do not support experiment {experiment}: ask its local contact, or a colleague with the "
                "support role.")
    return None


def may_support(person: Person | None, experiment: str, local_contact: str | None) -> bool:
    """Support and admin staff support every experiment; other staff the ones they are local contact or member of."""
    if person is None:
        return False
    if {SUPPORT_ROLE, ADMIN} & set(person.roles):
        return True
    return STAFF in person.roles and (person.username == local_contact or is_member(person, experiment))


def support_expiry(accepted_at: dt.datetime, hours: float) -> dt.datetime:
    """When an accepted support share ends."""
    if hours <= 0:
        raise ValueError("a support window must last a positive number of hours")
    return accepted_at + dt.timedelta(hours=hours)
