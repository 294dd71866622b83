"""Cloud failures, sorted into 'try again' and 'tell the user', and rewritten for people.

openstacksdk raises :class:`openstack.exceptions.HttpException` for API errors and keystoneauth raises
connection errors (a read timeout is a ``ConnectTimeout``). :func:`is_transient` decides what a bounded
retry may fix; :class:`InstanceError` carries a message a scientist understands (JupyterHub shows
``jupyterhub_message`` on the spawn page as "Spawn failed: ...").
"""

from __future__ import annotations

import re

from keystoneauth1 import exceptions as ksa_exceptions
from openstack import exceptions as sdk_exceptions
from tornado import web


class InstanceError(web.HTTPError):
    """A spawn or stop that failed for a reason the user should read; ``str()`` is that reason.

    An HTTP 503 (the service cannot give this instance now), so that a spawn request that fails before the
    hub's ``slow_spawn_timeout`` answers 503 with the message, not a bare 500.
    """

    metrics_reason = "cloud_fault"  # the label of visa_spawn_failures_total (visa_hub.metrics)

    def __init__(self, message: str, *, detail: str = ""):
        super().__init__(503, "%s", message)
        self.jupyterhub_message = message
        self.detail = detail  # the cloud's own words, for the hub log

    def __str__(self) -> str:
        return self.jupyterhub_message


class CloudUnavailable(InstanceError):
    """The cloud API kept failing (5xx, timeouts) after the bounded retries."""

    metrics_reason = "cloud_unavailable"


class NoCapacity(InstanceError):
    """Quota exhausted: retrying would not help, so it never is."""

    metrics_reason = "quota"


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of an SDK error, or ``None`` for connection-level failures."""
    return getattr(exc, "status_code", None) if isinstance(exc, sdk_exceptions.HttpException) else None


def is_transient(exc: BaseException) -> bool:
    """True for failures a later retry may fix: 5xx answers, timeouts, refused connections."""
    if isinstance(exc, ksa_exceptions.RetriableConnectionFailure | ksa_exceptions.ConnectionError):
        return True
    if isinstance(exc, sdk_exceptions.HttpException):
        code = status_code(exc)
        return code is None or code >= 500 or code == 429
    return False


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, ksa_exceptions.ConnectTimeout)


def is_quota(exc: BaseException) -> bool:
    """Nova answers 403 'Quota exceeded', Cinder 413, Neutron 409 'OverQuota'."""
    code = status_code(exc)
    text = cloud_message(exc)
    return (code in (403, 413, 409) and ("quota" in text.lower() or "LimitExceeded" in text)) or code == 413


def is_auth(exc: BaseException) -> bool:
    return isinstance(exc, ksa_exceptions.Unauthorized) or status_code(exc) == 401


def cloud_message(exc: BaseException) -> str:
    """The cloud's own message (openstacksdk puts the service's error body in ``details``)."""
    details = getattr(exc, "details", None)
    text = str(details or getattr(exc, "message", "") or exc)
    return text.strip()


def quota_message(flavour: str, experiment: str, exc: BaseException) -> str:
    detail = cloud_message(exc)
    match = re.search(r"Quota exceeded for ([\w, ]+?):", detail)
    what = f" (the cloud project's {match.group(1)} quota is used up)" if match else ""
    return (
        f"No capacity for flavour {flavour} for experiment {experiment}{what}. Stop another instance of "
        "this experiment or choose a smaller flavour; if this persists, contact support."
    )


# Nova fault messages (server.fault.message) → what happened, in words for people.
_FAULTS = [
    (r"No valid host|Exceeded maximum number of retries|not enough hosts",
     "the cloud has no free host for an instance of this size right now"),
    (r"[Vv]olume|[Bb]lock [Dd]evice", "your persistent home volume could not be attached"),
    (r"[Ii]mage .* (could not be found|not found)|[Ii]mage.*not active", "the instance image is not available"),
    (r"[Nn]etwork|[Pp]ort|IP address", "the instance could not be connected to the network"),
    (r"[Tt]imed out|[Tt]imeout", "the cloud took too long to build the instance"),
]


def fault_message(flavour: str, experiment: str, fault: dict | None) -> str:
    """A server in ERROR state, explained: what failed, for which experiment, and what to do."""
    raw = str((fault or {}).get("message") or "no reason given").strip()
    reason = next((text for pattern, text in _FAULTS if re.search(pattern, raw)), "the cloud could not build it")
    return (
        f"Your {flavour} instance for experiment {experiment} could not be started: {reason}. "
        "It has been removed. Please try again in a few minutes or choose a smaller flavour; "
        f"if it keeps failing, contact support (cloud fault: {raw[:200]})."
    )


def unavailable_message(action: str, exc: BaseException) -> str:
    kind = "did not answer in time" if is_timeout(exc) else "kept failing"
    return (
        f"The cloud {kind} while {action}, even after several tries. Nothing was left running. "
        "Please try again in a few minutes; if it persists, contact support."
    )
