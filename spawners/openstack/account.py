"""Her unix account on an instance: a valid unix name and a uid (the site's mapping, or a deterministic default).

JupyterLab on an instance runs as the person, never as root: user_data creates her account (or uses the one the
image already has, e.g. from the site's LDAP) with this uid and owns her home volume by it. The default uid is
``first + sha256(hub username) mod (last - first)`` over a range far from an image's own accounts, so the same
person gets the same uid on every instance and her persistent home keeps its owner.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

DEFAULT_UID_RANGE = (1_000_000, 1_000_000_000)  # [first, last): above any image's local and system accounts
LOWEST_UID = 1000  # below: system accounts of a Debian/Ubuntu image
NOBODY = 65534
_UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class AccountError(ValueError):
    """A uid mapping that would run an instance as a system account (a site configuration problem)."""


@dataclass(frozen=True)
class InstanceAccount:
    """Who JupyterLab runs as on the instance."""

    name: str  # unix login name
    uid: int  # also her primary group's gid when user_data creates the account
    home: str  # where her home volume is mounted


def unix_name(hub_name: str) -> str:
    """A valid unix login name for a hub user name: lowercase, ``[a-z0-9_-]``, at most 32 characters.

    Names that already are valid stay as they are; others (e-mail addresses, other scripts) keep their valid
    characters and get a short hash so that two hub names never share a unix name.
    """
    if _UNIX_NAME.match(hub_name):
        return hub_name
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", hub_name.lower()).strip("-") or "user"
    if not re.match(r"[a-z_]", cleaned):
        cleaned = f"u{cleaned}"
    suffix = hashlib.sha256(hub_name.encode()).hexdigest()[:8]
    return f"{cleaned[:23]}-{suffix}"


def default_uid(hub_name: str, uid_range: tuple[int, int] = DEFAULT_UID_RANGE) -> int:
    """The deterministic default uid of a hub user within ``[first, last)``."""
    first, last = uid_range
    digest = int.from_bytes(hashlib.sha256(hub_name.encode()).digest()[:8], "big")
    return first + digest % (last - first)


def checked_uid(uid: int, hub_name: str) -> int:
    """``uid`` if an instance may run a person's JupyterLab with it; else :class:`AccountError`."""
    if not isinstance(uid, int) or isinstance(uid, bool) or uid < LOWEST_UID or uid == NOBODY or uid >= 2**32 - 1:
        raise AccountError(f"uid {uid!r} for {hub_name} is not a person's uid (it must be >= {LOWEST_UID}, "
                           f"not {NOBODY})")
    return uid
