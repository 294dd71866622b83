"""User Office records as visa-hub keeps them, parsed field by field from GraphQL answers and events.

user-office-core's data reaches us in two shapes: GraphQL objects (``User``, ``Proposal``, ``Experiment``)
and AMQP event payloads (``proposalPk``, ``shortCode``, ``members``, bookings...). Both are parsed here into
the same small records. Parsing never raises on bad data: a malformed field is rejected with a log line
naming the record and the field, and a record missing what it cannot do without is skipped.

:func:`experiments_for` turns a proposal into the :class:`~visa_hub.people.Experiment` s a member sees.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..people import CO_PROPOSER, LOCAL_CONTACT, PRINCIPAL_INVESTIGATOR, Experiment

# A child of JupyterHub's application logger, so these lines land in the hub's log (with its level and
# format) inside the hub, and propagate to the root logger anywhere else.
log = logging.getLogger("JupyterHub.visa_hub.useroffice")


class Rejected(ValueError):
    """A field of User Office data that cannot be used (already logged)."""


def _reject(where: str, name: str, value: Any, expected: str) -> Rejected:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    log.warning("User Office data rejected: %s, field %s: expected %s, got %s", where, name, expected, shown)
    return Rejected(f"{where}: {name}")


# -- field readers: each returns the value or raises Rejected (after logging) ------------------------------
def integer(data: Mapping[str, Any], name: str, where: str, *, optional: bool = False) -> int | None:
    """An id: ``Int`` or an integral ``Float`` (user-office-core's Experiment keys are Floats)."""
    value = data.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise _reject(where, name, value, "a whole number")
    return int(value)


def text(data: Mapping[str, Any], name: str, where: str, *, optional: bool = False) -> str | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        if optional:
            _reject(where, name, value, "text")
            return None
        raise _reject(where, name, value, "non-empty text")
    return value.strip()


def timestamp(data: Mapping[str, Any], name: str, where: str) -> dt.datetime:
    """user-office-core's ``DateTime``: ISO 8601 with milliseconds and ``Z``; naive times are UTC."""
    value = data.get(name)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise _reject(where, name, value, "an ISO 8601 date-time")


def mapping(data: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        _reject(where, name, value, "an object")
        return None
    return value


def items(data: Mapping[str, Any], name: str, where: str) -> list[Mapping[str, Any]]:
    """A list of objects; a non-list is rejected whole, a non-object entry alone."""
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        _reject(where, name, value, "a list")
        return []
    good = []
    for index, item in enumerate(value):
        if isinstance(item, Mapping):
            good.append(item)
        elif item is not None:
            _reject(where, f"{name}[{index}]", item, "an object")
    return good


def id_set(entries: Iterable[Mapping[str, Any]], where: str) -> frozenset[int]:
    """The ``id`` of each entry (members of a proposal); entries without a usable id are rejected."""
    found = set()
    for entry in entries:
        try:
            found.add(integer(entry, "id", where))
        except Rejected:
            continue
    return frozenset(i for i in found if i is not None)


def display_name(data: Mapping[str, Any], where: str) -> str | None:
    """``First Last`` (preferred name first) from a User/BasicUserDetails or an event's member."""
    first = (text(data, "preferredname", where, optional=True)
             or text(data, "firstname", where, optional=True)
             or text(data, "firstName", where, optional=True))
    last = text(data, "lastname", where, optional=True) or text(data, "lastName", where, optional=True)
    name = " ".join(part for part in (first, last) if part)
    return name or None


# -- records --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstrumentRef:
    """An instrument as the User Office names it (``name`` matches the site catalog case-insensitively)."""

    id: int
    name: str
    short_code: str = ""


@dataclass(frozen=True)
class Booking:
    """A scheduled experiment (a scheduler booking) of a proposal on an instrument."""

    key: int
    instrument_id: int | None
    starts_at: dt.datetime
    ends_at: dt.datetime
    local_contact_id: int | None = None
    local_contact: str | None = None  # "Carol White (carol.white@ess.eu)"
    instrument: InstrumentRef | None = None


@dataclass(frozen=True)
class ProposalRecord:
    """A proposal: who is on it, on which instruments, and its bookings."""

    pk: int
    short_code: str
    title: str
    proposer_id: int | None = None
    member_ids: frozenset[int] = frozenset()
    instruments: tuple[InstrumentRef, ...] = ()
    bookings: tuple[Booking, ...] = ()

    def role_of(self, user_id: int) -> str | None:
        if user_id == self.proposer_id:
            return PRINCIPAL_INVESTIGATOR
        if user_id in self.member_ids:
            return CO_PROPOSER
        if any(b.local_contact_id == user_id for b in self.bookings):
            return LOCAL_CONTACT
        return None


@dataclass(frozen=True)
class UserRecord:
    """A User Office user: identity and User Office role short codes (``user``, ``instrument_scientist``...)."""

    id: int
    name: str
    email: str = ""
    subject: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)


# -- GraphQL objects → records --------------------------------------------------------------------------
def parse_instrument(data: Mapping[str, Any], where: str) -> InstrumentRef | None:
    try:
        instrument_id = integer(data, "id", where)
    except Rejected:
        return None
    name = text(data, "name", where, optional=True)
    short_code = text(data, "shortCode", where, optional=True) or ""
    if not (name or short_code):
        _reject(where, "name", data.get("name"), "an instrument name")
        return None
    assert instrument_id is not None
    return InstrumentRef(instrument_id, name or short_code, short_code)


def _contact(data: Mapping[str, Any] | None, where: str) -> str | None:
    if not data:
        return None
    name = display_name(data, where)
    email = text(data, "email", where, optional=True)
    if name and email:
        return f"{name} ({email})"
    return name or email


def parse_booking(data: Mapping[str, Any], where: str) -> Booking | None:
    """A GraphQL ``Experiment`` or a scheduler booking payload; None (logged) if unusable."""
    try:
        key = integer(data, "scheduledEventId", where, optional=True)
        if key is None:
            key = integer(data, "id", where, optional=True)
        if key is None:
            key = integer(data, "experimentPk", where)
        starts_at = timestamp(data, "startsAt", where)
        ends_at = timestamp(data, "endsAt", where)
    except Rejected:
        return None
    if ends_at < starts_at:
        _reject(where, "endsAt", data.get("endsAt"), f"a time after startsAt ({data.get('startsAt')})")
        return None
    instrument_data = mapping(data, "instrument", where)
    instrument = parse_instrument(instrument_data, f"{where} instrument") if instrument_data else None
    try:
        instrument_id = integer(data, "instrumentId", where, optional=True)
    except Rejected:
        instrument_id = None
    try:
        contact_id = integer(data, "localContactId", where, optional=True)
    except Rejected:
        contact_id = None
    contact = mapping(data, "localContact", where)
    assert key is not None
    return Booking(
        key=key,
        instrument_id=instrument_id if instrument_id is not None else (instrument.id if instrument else None),
        starts_at=starts_at,
        ends_at=ends_at,
        local_contact_id=contact_id,
        local_contact=_contact(contact, f"{where} localContact"),
        instrument=instrument,
    )


def parse_proposal(data: Mapping[str, Any]) -> ProposalRecord | None:
    """A GraphQL ``Proposal`` (with ``users``, ``instruments``, ``experiments``); None (logged) if unusable."""
    where = f"proposal {data.get('proposalId') or data.get('primaryKey')!s}"
    try:
        pk = integer(data, "primaryKey", where)
        short_code = text(data, "proposalId", where)
    except Rejected:
        return None
    title = text(data, "title", where, optional=True) or f"Proposal {short_code}"
    try:
        proposer_id = integer(data, "proposerId", where, optional=True)
    except Rejected:
        proposer_id = None
    members = id_set(items(data, "users", where), f"{where} member")
    instruments = tuple(
        i for i in (parse_instrument(d, f"{where} instrument") for d in items(data, "instruments", where)) if i
    )
    bookings = tuple(
        b for b in (parse_booking(d, f"{where} experiment") for d in items(data, "experiments", where)) if b
    )
    assert pk is not None and short_code is not None
    return ProposalRecord(pk, short_code, title, proposer_id, members, instruments, bookings)


def parse_user(data: Mapping[str, Any]) -> UserRecord | None:
    """A GraphQL ``User`` (with ``roles { shortCode }``); None (logged) if unusable."""
    where = f"user {data.get('id')!s}"
    try:
        user_id = integer(data, "id", where)
    except Rejected:
        return None
    roles = set()
    for role in items(data, "roles", where):
        code = text(role, "shortCode", f"{where} role", optional=True)
        if code:
            roles.add(code.lower())
    assert user_id is not None
    return UserRecord(
        id=user_id,
        name=display_name(data, where) or f"User {user_id}",
        email=text(data, "email", where, optional=True) or "",
        subject=text(data, "oidcSub", where, optional=True),
        roles=frozenset(roles),
    )


# -- records → the experiments a person sees ----------------------------------------------------------
_told_undated: set[tuple[int, int]] = set()  # log each undated experiment once, not at every lookup


def experiments_for(proposal: ProposalRecord, role: str) -> list[Experiment]:
    """The visa experiments of a proposal: one per instrument with bookings, dated by their span.

    The code is the proposal's short code, ``<code>-<instrument short code>`` when the proposal has several
    instruments. A single-instrument proposal's bookings all count for that instrument (the scheduler
    books where the proposal was allocated). An instrument without bookings has no dates: not offered.
    """
    instruments = list(proposal.instruments)
    known = {i.id for i in instruments}
    for booking in proposal.bookings:  # bookings on instruments the proposal does not list (yet)
        if booking.instrument and booking.instrument.id not in known and len(instruments) != 1:
            instruments.append(booking.instrument)
            known.add(booking.instrument.id)
    several = len(instruments) > 1
    experiments = []
    for instrument in instruments:
        bookings = [b for b in proposal.bookings if not several or b.instrument_id == instrument.id]
        code = f"{proposal.short_code}-{instrument.short_code or instrument.name}" if several else proposal.short_code
        if not bookings:
            if (proposal.pk, instrument.id) in _told_undated:
                continue
            _told_undated.add((proposal.pk, instrument.id))
            log.info("Experiment %s on %s not offered: no scheduled experiment (no dates) in the User Office",
                     code, instrument.name)
            continue
        first = min(bookings, key=lambda b: b.starts_at)
        contact = next((b.local_contact for b in sorted(bookings, key=lambda b: b.starts_at) if b.local_contact),
                       None)
        experiments.append(Experiment(
            code=code,
            title=proposal.title,
            instrument=instrument.name,
            starts_at=first.starts_at,
            ends_at=max(b.ends_at for b in bookings),
            proposal_pk=proposal.pk,
            local_contact=contact,
            role=role,
        ))
    if not instruments:
        log.info("Proposal %s not offered: no instrument selected in the User Office", proposal.short_code)
    return experiments


def site_roles_from(user_office_roles: Iterable[str], mapping_: Mapping[str, str]) -> frozenset[str]:
    """visa-hub site roles granted by User Office roles (e.g. ``instrument_scientist`` → ``staff``)."""
    return frozenset(mapping_[r] for r in user_office_roles if r in mapping_)
