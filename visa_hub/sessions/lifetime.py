"""The lifetime rules applied to one instance: (facts, limits, warnings already sent, now) → what to do.

Pure: no I/O and no clock (``now`` is a parameter), so the scheduler and the tests share it. Three reasons
stop an instance: its end of life (``expired``), no activity for the inactivity timeout (``inactive``) and
its owner no longer being a member of its experiment (``membership``). Each is announced first; every
warning has a key that names its deadline, so a warning is sent once, and one about a deadline that moved
(an extension, new activity, membership restored) no longer applies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from ..lifetimes import LifetimeLimits

EXPIRY, INACTIVITY, MEMBERSHIP = "expiry", "inactivity", "membership"
STOP_REASONS = {EXPIRY: "expired", INACTIVITY: "inactive", MEMBERSHIP: "membership"}


@dataclass(frozen=True)
class InstanceFacts:
    """What the service knows about one running instance."""

    started_at: dt.datetime
    expires_at: dt.datetime
    last_activity: dt.datetime | None = None  # newest activity the hub knows (Lab, proxy, desktop input)
    member: bool = True  # the owner is still a member of the instance's experiment (or staff)
    membership_lost_at: dt.datetime | None = None  # when the service first saw she no longer is


@dataclass(frozen=True)
class Warning:
    """One announcement of a stop: its kind, the stop's time and how far ahead (for expiry: which threshold)."""

    kind: str
    deadline: dt.datetime
    threshold_hours: float | None = None
    level: int = 1  # expiry: how many thresholds are crossed (1 = the first, far one)

    @property
    def key(self) -> str:
        """Unique per kind, threshold and deadline: sent once; stale once the deadline moved."""
        threshold = "" if self.threshold_hours is None else f"{round(self.threshold_hours * 3600)}s"
        return f"{self.kind}:{threshold}:{self.deadline.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


@dataclass(frozen=True)
class Decision:
    """What the scheduler does now for one instance."""

    stop: str | None  # a STOP_REASONS value, or None
    send: tuple[Warning, ...]  # warnings to send now (not sent before)
    active: tuple[Warning, ...]  # every warning that applies now (what Lab and the hub page show)

    def is_current(self, key: str) -> bool:
        return any(w.key == key for w in self.active)


def idle_deadline(facts: InstanceFacts, limits: LifetimeLimits) -> dt.datetime | None:
    """When the instance stops for inactivity if nothing happens; ``None`` when it never does."""
    if limits.inactivity_hours is None:
        return None
    since = max(facts.started_at, facts.last_activity or facts.started_at)
    return since + dt.timedelta(hours=limits.inactivity_hours)


def membership_deadline(facts: InstanceFacts, limits: LifetimeLimits, now: dt.datetime) -> dt.datetime | None:
    if facts.member:
        return None
    lost = facts.membership_lost_at or now
    return lost + dt.timedelta(hours=limits.membership_grace_hours)


def expiry_thresholds(facts: InstanceFacts, limits: LifetimeLimits) -> list[float]:
    """The end-of-life warnings that apply: those shorter than the instance's whole lifetime (a 48 h warning
    would fire at the start of a 24 h instance, which she has just chosen)."""
    lifetime_hours = (facts.expires_at - facts.started_at).total_seconds() / 3600
    return [t for t in limits.warnings_hours if t < lifetime_hours]


def _expiry_warning(facts: InstanceFacts, limits: LifetimeLimits, now: dt.datetime) -> Warning | None:
    crossed = [t for t in expiry_thresholds(facts, limits) if now >= facts.expires_at - dt.timedelta(hours=t)]
    if not crossed:
        return None
    return Warning(EXPIRY, facts.expires_at, min(crossed), level=len(crossed))


def decide(facts: InstanceFacts, limits: LifetimeLimits, sent: Mapping[str, dt.datetime],
           now: dt.datetime) -> Decision:
    """Apply the rules; ``sent`` maps the keys of warnings already sent to when they were sent."""
    active: list[Warning] = []

    expiry = _expiry_warning(facts, limits, now)
    if expiry:
        active.append(expiry)

    idle_at = idle_deadline(facts, limits)
    idle_stop = False
    if idle_at is not None:
        warning_hours = limits.inactivity_warning_hours
        if warning_hours and now >= idle_at - dt.timedelta(hours=warning_hours):
            warning = Warning(INACTIVITY, idle_at, warning_hours)
            active.append(warning)
            # she gets the whole warning period, even if the warning went out late (e.g. the service was down)
            sent_at = sent.get(warning.key)
            idle_stop = sent_at is not None and now >= max(idle_at, sent_at + dt.timedelta(hours=warning_hours))
        else:
            idle_stop = not warning_hours and now >= idle_at

    member_at = membership_deadline(facts, limits, now)
    member_stop = False
    if member_at is not None:
        warning = Warning(MEMBERSHIP, member_at, limits.membership_grace_hours)
        active.append(warning)
        member_stop = warning.key in sent and now >= member_at

    stop = None
    if now >= facts.expires_at:
        stop = STOP_REASONS[EXPIRY]
    elif member_stop:
        stop = STOP_REASONS[MEMBERSHIP]
    elif idle_stop:
        stop = STOP_REASONS[INACTIVITY]
    send = tuple(w for w in active if w.key not in sent) if stop is None else ()
    return Decision(stop=stop, send=send, active=tuple(active))


@dataclass(frozen=True)
class ExtensionOutcome:
    """What an extension to ``new_expires_at`` means: done at once, a request for an admin, or refused."""

    kind: str  # "auto" | "request" | "refused"
    message: str


def extension_outcome(limits: LifetimeLimits, started_at: dt.datetime, expires_at: dt.datetime,
                      new_expires_at: dt.datetime) -> ExtensionOutcome:
    """Within ``auto_up_to`` (and allowed for her role and image): at once; up to ``extension max``: a request."""
    if new_expires_at <= expires_at:
        return ExtensionOutcome("refused", "An extension must end later than the instance does now.")
    total_hours = (new_expires_at - started_at).total_seconds() / 3600
    if limits.auto_extend and total_hours <= limits.auto_up_to_hours + 1e-9:
        return ExtensionOutcome("auto", "Extended.")
    if total_hours <= limits.extension_max_hours + 1e-9:
        why = ("extensions of this instance need an administrator's approval" if not limits.auto_extend else
               f"instances are extended at once only up to {format_hours(limits.auto_up_to_hours)} in all")
        return ExtensionOutcome("request", f"This extension needs approval: {why}.")
    return ExtensionOutcome(
        "refused",
        f"An instance can live at most {format_hours(limits.extension_max_hours)} in all; this extension would "
        f"make it {format_hours(total_hours)}. Relaunch with the same settings after it ends: your files and "
        "Lab layout are kept.")


def format_hours(hours: float) -> str:
    """``14 days``, ``36 hours``, ``3 minutes``."""
    if hours >= 48 and hours % 24 == 0:
        return f"{hours / 24:g} days"
    if hours >= 1:
        return f"{hours:g} hours" if hours != 1 else "1 hour"
    minutes = round(hours * 60)
    return f"{minutes} minutes" if minutes != 1 else "1 minute"
