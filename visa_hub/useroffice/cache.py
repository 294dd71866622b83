"""The User Office client's memory: users and proposals with their age, patched by events.

Pure bookkeeping (no I/O, the clock is a parameter). The GraphQL client stores what it fetched; the event
consumer applies what user-office-core and its scheduler publish (members removed, instruments selected,
bookings moved) and marks the users concerned *stale*, so their next lookup goes back to the User Office
without waiting for the TTL. When the User Office cannot answer, whatever is cached — patched by events —
is what visa-hub believes.

Answers and events race: a GraphQL answer computed before a member was removed may arrive after the event
that removed her. Every event therefore bumps a *generation* and records it on the proposals and users it
touched; an answer whose lookup started before such an event is refused by :meth:`UserOfficeCache.store_user`
(the client asks again), so an older answer never undoes a newer event.

Lookups by email obey :func:`~visa_hub.useroffice.may_match`: a cached user with another OIDC subject than
the login's is never returned for it, fresh or stale.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import may_match
from .records import (
    InstrumentRef,
    ProposalRecord,
    Rejected,
    UserRecord,
    id_set,
    integer,
    items,
    mapping,
    parse_booking,
    text,
)

# A child of JupyterHub's application logger, so these lines land in the hub's log (with its level and
# format) inside the hub, and propagate to the root logger anywhere else.
log = logging.getLogger("JupyterHub.visa_hub.useroffice")


@dataclass(frozen=True)
class CachedUser:
    user: UserRecord
    fetched_at: float
    stale: bool = False


class UserOfficeCache:
    """Users (by id, OIDC subject and email) and proposals (by primary key)."""

    def __init__(self) -> None:
        self.users: dict[int, CachedUser] = {}
        self.by_subject: dict[str, int] = {}
        self.by_email: dict[str, int] = {}
        self.proposals: dict[int, ProposalRecord] = {}
        self.instruments: dict[int, InstrumentRef] = {}
        self.site_fetched_at: float | None = None
        #: Bumped by every event; what each event touched remembers the generation it was bumped to.
        self.generation = 0
        self._proposal_changed: dict[int, int] = {}
        self._user_changed: dict[int, int] = {}
        self._all_changed = 0

    # -- generations: answers older than an event are refused -------------------------------------------
    def _changed(self, *, proposals: set[int] = frozenset(), users: set[int] = frozenset(),
                 everything: bool = False) -> None:
        self.generation += 1
        for pk in proposals:
            self._proposal_changed[pk] = self.generation
        for user_id in users:
            self._user_changed[user_id] = self.generation
        if everything:
            self._all_changed = self.generation

    def changed_since(self, generation: int, user_id: int, proposal_pks: set[int]) -> bool:
        """Whether an event after ``generation`` touched this user, these proposals or any cached proposal
        she is on (an answer from before that event must not be stored)."""
        if self._all_changed > generation or self._user_changed.get(user_id, 0) > generation:
            return True
        mine = {pk for pk, p in self.proposals.items() if user_id in self.people_of(p)}
        return any(self._proposal_changed.get(pk, 0) > generation for pk in proposal_pks | mine)

    # -- what the GraphQL client stores -----------------------------------------------------------------
    def store_user(self, user: UserRecord, proposals: list[ProposalRecord], now: float,
                   since: int | None = None) -> bool:
        """A fresh answer about one user: her record and every proposal she is on now.

        ``since``: the :attr:`generation` when the lookup started. If an event touched her or her proposals
        after that, the answer may predate the event: nothing is stored and the result is False (ask again).
        """
        if since is not None and self.changed_since(since, user.id, {p.pk for p in proposals}):
            return False
        old = self.users.get(user.id)
        if old and old.user.subject and old.user.subject != user.subject:
            self.by_subject.pop(old.user.subject, None)
        self.users[user.id] = CachedUser(user, now)
        if user.subject:
            self.by_subject[user.subject] = user.id
        if user.email:
            self.by_email[user.email.casefold()] = user.id
        fresh = {p.pk for p in proposals}
        for proposal in proposals:
            self.store_proposal(proposal)
        # her answer is authoritative about her: drop her from cached proposals she is no longer on
        for pk, proposal in list(self.proposals.items()):
            if pk not in fresh and (proposal.proposer_id == user.id or user.id in proposal.member_ids):
                self.proposals[pk] = replace(
                    proposal,
                    member_ids=proposal.member_ids - {user.id},
                    proposer_id=None if proposal.proposer_id == user.id else proposal.proposer_id,
                )
        return True

    def store_proposal(self, proposal: ProposalRecord) -> None:
        self.proposals[proposal.pk] = proposal
        for instrument in proposal.instruments:
            self.instruments[instrument.id] = instrument
        for booking in proposal.bookings:
            if booking.instrument:
                self.instruments[booking.instrument.id] = booking.instrument

    def store_site(self, proposals: list[ProposalRecord], now: float, since: int | None = None) -> bool:
        """The answer to 'every proposal': replaces what is known about proposals.

        Refused (False) when any event arrived after ``since``: the listing may predate it.
        """
        if since is not None and self.generation > since:
            return False
        self.proposals = {}
        for proposal in proposals:
            self.store_proposal(proposal)
        self.site_fetched_at = now
        return True

    # -- what lookups read ------------------------------------------------------------------------------
    def find_user(self, *, subject: str | None = None, email: str | None = None) -> CachedUser | None:
        """The cached user with this OIDC subject, else with this email if she may be this login."""
        if subject:
            cached = self.users.get(self.by_subject.get(subject, -1))
            if cached is not None and cached.user.subject == subject:
                return cached
        if email:
            cached = self.users.get(self.by_email.get(email.casefold(), -1))
            if cached is not None and may_match(cached.user.subject, subject):
                return cached
        return None

    def email_owner(self, email: str | None) -> UserRecord | None:
        """The cached user record with this email, whoever she is (to explain a refusal)."""
        cached = self.users.get(self.by_email.get(email.casefold(), -1)) if email else None
        return cached.user if cached else None

    def proposals_of(self, user_id: int) -> list[tuple[ProposalRecord, str]]:
        """Her proposals with her role in each (principal investigator, co-proposer, local contact)."""
        found = []
        for proposal in sorted(self.proposals.values(), key=lambda p: p.pk):
            role = proposal.role_of(user_id)
            if role:
                found.append((proposal, role))
        return found

    def is_fresh(self, cached: CachedUser, now: float, ttl: float) -> bool:
        return not cached.stale and now - cached.fetched_at < ttl

    # -- what events change -----------------------------------------------------------------------------
    def mark_stale(self, user_ids: set[int]) -> None:
        for user_id in user_ids:
            cached = self.users.get(user_id)
            if cached:
                self.users[user_id] = replace(cached, stale=True)

    def invalidate_all(self) -> None:
        """Events may have been missed (consumer reconnected): re-ask the User Office for everyone."""
        self._changed(everything=True)
        self.mark_stale(set(self.users))
        self.site_fetched_at = None

    def people_of(self, proposal: ProposalRecord | None) -> set[int]:
        if proposal is None:
            return set()
        return {proposal.proposer_id or 0, *proposal.member_ids, *(b.local_contact_id or 0 for b in proposal.bookings)}

    def apply_proposal_event(self, event: str, payload: Mapping[str, Any]) -> str:
        """A proposal event of user-office-core's fanout exchange; returns what it did (for the log)."""
        where = f"{event} event"
        pk = _proposal_pk(payload, where)
        if pk is None:
            return "ignored (no proposalPk)"
        self._changed(proposals={pk})
        old = self.proposals.get(pk)
        affected = self.people_of(old)
        if event == "PROPOSAL_DELETED":
            self.proposals.pop(pk, None)
            self.mark_stale(affected)
            self.site_fetched_at = None
            return f"proposal {pk} deleted"

        short_code = text(payload, "shortCode", where, optional=True) or (old.short_code if old else None)
        if short_code is None:
            self.mark_stale(affected)
            return f"proposal {pk}: no short code, users marked for re-reading"
        title = text(payload, "title", where, optional=True) or (old.title if old else f"Proposal {short_code}")
        updated = old or ProposalRecord(pk=pk, short_code=short_code, title=title)
        updated = replace(updated, short_code=short_code, title=title)

        if "instruments" in payload:
            instruments = []
            for entry in items(payload, "instruments", where):
                try:
                    instrument_id = integer(entry, "id", f"{where} instrument")
                except Rejected:
                    continue
                assert instrument_id is not None
                known = self.instruments.get(instrument_id)
                code = text(entry, "shortCode", f"{where} instrument", optional=True)
                name = text(entry, "name", f"{where} instrument", optional=True)
                if known:
                    instruments.append(known)
                elif name or code:
                    instruments.append(InstrumentRef(instrument_id, name or code or "", code or ""))
            updated = replace(updated, instruments=tuple(instruments))

        proposer = mapping(payload, "proposer", where)
        if proposer is not None or "members" in payload:
            proposer_id = None
            if proposer is not None:
                try:
                    proposer_id = integer(proposer, "id", f"{where} proposer")
                except Rejected:
                    proposer_id = updated.proposer_id
            members = id_set(items(payload, "members", where), f"{where} member")
            updated = replace(updated, proposer_id=proposer_id, member_ids=members - {proposer_id})

        self.proposals[pk] = updated  # also patches the site-wide list staff see
        self.mark_stale(affected | self.people_of(updated))
        return f"proposal {pk} ({short_code}) updated"

    def apply_booking_event(self, event: str, payload: Mapping[str, Any]) -> str:
        """A scheduler booking (startsAt, endsAt, localContactId, instrumentId, proposalPk)."""
        where = f"{event} event"
        pk = _proposal_pk(payload, where)
        if pk is None:
            return "ignored (no proposalPk)"
        self._changed(proposals={pk})
        proposal = self.proposals.get(pk)
        removed = any(word in event.upper() for word in ("DELETED", "REMOVED", "CANCELLED"))
        if removed:
            try:
                key = integer(payload, "id", where, optional=True)
                if key is None:
                    key = integer(payload, "scheduledEventId", where)
            except Rejected:
                return "ignored (no booking id)"
            if proposal:
                self.proposals[pk] = replace(proposal, bookings=tuple(b for b in proposal.bookings if b.key != key))
                self.mark_stale(self.people_of(proposal))
            return f"booking {key} of proposal {pk} removed"
        booking = parse_booking(payload, where)
        if booking is None:
            return "ignored (malformed booking)"
        if booking.instrument is None and booking.instrument_id in self.instruments:
            booking = replace(booking, instrument=self.instruments[booking.instrument_id])
        if booking.local_contact is None and booking.local_contact_id in self.users:
            contact = self.users[booking.local_contact_id].user
            booking = replace(booking, local_contact=f"{contact.name} ({contact.email})" if contact.email
                              else contact.name)
        if proposal:
            bookings = [b for b in proposal.bookings if b.key != booking.key]
            self.proposals[pk] = replace(proposal, bookings=(*bookings, booking))
            self.mark_stale(self.people_of(self.proposals[pk]))
        return f"booking {booking.key} of proposal {pk}: {booking.starts_at:%Y-%m-%d %H:%M} – " \
               f"{booking.ends_at:%Y-%m-%d %H:%M}"

    def apply_visit_event(self, event: str, payload: Mapping[str, Any]) -> str:
        """A visit changed: its proposal's people are re-read at their next lookup."""
        try:
            pk = integer(payload, "proposalPk", f"{event} event")
        except Rejected:
            return "ignored (no proposalPk)"
        self._changed(proposals={pk or 0})
        self.mark_stale(self.people_of(self.proposals.get(pk or 0)))
        return f"people of proposal {pk} marked for re-reading"

    def apply_user_event(self, event: str, payload: Mapping[str, Any]) -> str:
        try:
            user_id = integer(payload, "id", f"{event} event")
        except Rejected:
            return "ignored (no user id)"
        assert user_id is not None
        self._changed(users={user_id})
        if event == "USER_DELETED":
            cached = self.users.pop(user_id, None)
            if cached:
                self.by_subject.pop(cached.user.subject or "", None)
                self.by_email.pop(cached.user.email.casefold(), None)
            return f"user {user_id} forgotten"
        self.mark_stale({user_id})
        return f"user {user_id} marked for re-reading"


def _proposal_pk(payload: Mapping[str, Any], where: str) -> int | None:
    """The event's ``proposalPk``; ``None`` when it has no usable one (the event is then ignored)."""
    try:
        return integer(payload, "proposalPk", where)
    except Rejected:
        return None
