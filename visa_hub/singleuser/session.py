"""The instance's session, as the spawner describes it in the environment. Pure: no I/O, no clock.

The spawner sets ``VISA_SESSION`` (JSON, see :meth:`visa_hub.policy.SessionPlan.summary`), ``VISA_EXPIRES_AT`` and
the usual ``JUPYTERHUB_*`` variables; :func:`session_payload` turns them into what the session API answers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

SESSION_VARIABLE = "VISA_SESSION"


class SessionError(ValueError):
    """The environment holds a session we cannot read (a spawner bug, not the user's)."""


def load_session(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The session from ``VISA_SESSION``; ``None`` when the server does not run under visa-hub."""
    raw = environ.get(SESSION_VARIABLE, "").strip()
    if not raw:
        return None
    try:
        session = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SessionError(f"{SESSION_VARIABLE} is not valid JSON ({exc.msg} at position {exc.pos}).") from None
    if not isinstance(session, dict):
        raise SessionError(f"{SESSION_VARIABLE} must be a JSON object, not {type(session).__name__}.")
    return session


def parse_time(value: str) -> dt.datetime:
    """An ISO 8601 time; one without a zone is taken as UTC (as the spawner writes UTC)."""
    try:
        when = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise SessionError(f"Not an ISO 8601 time: {value!r}.") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def seconds_left(expires_at: dt.datetime, now: dt.datetime) -> int:
    """Whole seconds until ``expires_at``; 0 once it has passed."""
    return max(0, int((expires_at - now).total_seconds()))


def hub_links(environ: Mapping[str, str]) -> dict[str, str]:
    """Links back to the hub: its prefix, its home page, the spawn page of this very server, and the hub's
    pages that stop it or relaunch it with the same settings (:mod:`visa_hub.hubpages`, after a confirmation).
    """
    base_url = environ.get("JUPYTERHUB_BASE_URL") or "/"
    hub_prefix = base_url.rstrip("/") + "/hub/"
    host = environ.get("JUPYTERHUB_HOST", "").rstrip("/")  # set only when the hub uses subdomains
    server_name = environ.get("JUPYTERHUB_SERVER_NAME", "")
    user = environ.get("JUPYTERHUB_USER", "")
    spawn_path = f"spawn/{quote(user, safe='')}/{quote(server_name, safe='')}" if server_name and user else "spawn"
    links = {
        "hub_prefix": hub_prefix,
        "hub_url": host + hub_prefix,
        "hub_home_url": f"{host}{hub_prefix}home",
        "spawn_url": f"{host}{hub_prefix}{spawn_path}",
    }
    if user:  # {hub}/hub/visa/<action>/<user>/<server_name>, the server name empty for the default server
        server = f"{quote(user, safe='')}/{quote(server_name, safe='')}"
        links["relaunch_url"] = f"{host}{hub_prefix}visa/relaunch/{server}"
        links["stop_url"] = f"{host}{hub_prefix}visa/stop/{server}"
    return links


def session_payload(environ: Mapping[str, str], now: dt.datetime) -> dict[str, Any] | None:
    """What ``GET visa/api/session`` answers: the session, ``seconds_left`` and hub links; ``None`` outside visa-hub."""
    session = load_session(environ)
    if session is None:
        return None
    expires_at = session.get("expires_at") or environ.get("VISA_EXPIRES_AT")
    if not expires_at:
        raise SessionError(f"{SESSION_VARIABLE} has no expires_at.")
    return {**session, "seconds_left": seconds_left(parse_time(expires_at), now), **hub_links(environ)}
