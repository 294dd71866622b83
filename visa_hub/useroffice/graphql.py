"""The User Office of ESS (user-office-core) over GraphQL, with a TTL cache patched by its events.

Configure it in the hub (``c.VisaSite.user_office_class = "visa_hub.useroffice.graphql.GraphQLUserOffice"``)::

    c.GraphQLUserOffice.url = "https://useroffice.ess.eu/graphql"
    c.GraphQLUserOffice.token = "<API access token>"   # Settings → API access; never logged
    c.GraphQLUserOffice.amqp_url = "amqp://visa:...@rabbitmq.ess.eu/"   # optional: events

A user is looked up by OIDC subject (``userByOIDCSub``), else by verified email
(``basicUserDetailsByEmail`` then ``user``), with her proposals, their instruments and their scheduled
experiments. Answers are cached for :attr:`GraphQLUserOffice.cache_ttl` seconds; events make the users
they concern be re-read at once. When the User Office is down or slow, users known to the cache keep
working from it (logged as a warning) and unknown ones get :class:`~visa_hub.useroffice.UserOfficeUnavailable`.

A user found by email whose ``oidcSub`` is another login's is not this login's: on a fresh answer, from
the cache and from the cache during an outage alike, the answer is
:class:`~visa_hub.useroffice.IdentityConflict`. An answer that crossed an event about her (a lookup started
before the event, answered after it) is thrown away and asked again, so it cannot undo the event.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.simple_httpclient import SimpleAsyncHTTPClient
from traitlets import Bool, Dict, Float, Instance, Int, Unicode, default

from .. import metrics
from ..people import Experiment, Person
from . import IdentityConflict, UserOffice, UserOfficeUnavailable, may_match
from .cache import UserOfficeCache
from .records import (
    ProposalRecord,
    UserRecord,
    experiments_for,
    parse_proposal,
    parse_user,
    site_roles_from,
)

PROPOSAL_FIELDS = """
fragment VisaProposal on Proposal {
  primaryKey proposalId title proposerId
  users { id }
  instruments { id name shortCode }
  experiments {
    experimentPk scheduledEventId startsAt endsAt status instrumentId localContactId
    localContact { id firstname lastname preferredname email }
    instrument { id name shortCode }
  }
}
"""

USER_FIELDS = """
fragment VisaUser on User {
  id firstname lastname preferredname email oidcSub
  roles { shortCode }
  proposals { ...VisaProposal }
}
""" + PROPOSAL_FIELDS

USER_BY_SUBJECT = "query VisaUserBySub($sub: String!) { user: userByOIDCSub(oidcSub: $sub) { ...VisaUser } }" \
    + USER_FIELDS
USER_BY_ID = "query VisaUserById($id: Int!) { user(userId: $id) { ...VisaUser } }" + USER_FIELDS
USER_ID_BY_EMAIL = "query VisaUserByEmail($email: String!) { basic: basicUserDetailsByEmail(email: $email) " \
    "{ id oidc_sub } }"
ALL_PROPOSALS = "query VisaProposals($first: Int, $offset: Int) { proposals(first: $first, offset: $offset) " \
    "{ totalCount proposals { ...VisaProposal } } }" + PROPOSAL_FIELDS

# What the API access token needs (user-office-core: Settings → API access).
REQUIRED_PERMISSIONS = (
    "UserQueries.getByOidcSub", "UserQueries.getBasicUserDetailsByEmail", "UserQueries.get",
    "UserQueries.getBasic", "UserQueries.getProposers", "ProposalQueries.get", "ProposalQueries.getAll",
    "ProposalQueries.getExperimentsByProposalPk", "InstrumentQueries.get",
    "InstrumentQueries.getInstrumentsByProposalPk",
)


class GraphQLUserOffice(UserOffice):
    """user-office-core's GraphQL API with an API access token; cached, and kept current by events."""

    url = Unicode("", config=True, help="The User Office GraphQL endpoint, e.g. https://useroffice.ess.eu/graphql.")
    token = Unicode(
        "",
        config=True,
        help="API access token of the User Office (Settings → API access), sent as 'Authorization: Bearer'. "
             "Never logged. It needs these permissions: " + ", ".join(REQUIRED_PERMISSIONS) + ".",
    )
    timeout = Float(10.0, config=True, help="Seconds to wait for one User Office answer before calling it unavailable.")
    connect_timeout = Float(5.0, config=True, help="Seconds to wait for a connection to the User Office.")
    cache_ttl = Float(
        300.0,
        config=True,
        help="Seconds a user's User Office answer is reused. Events (amqp_url) make changes apply sooner; "
             "when the User Office is down, older answers are used anyway (with a warning).",
    )
    amqp_url = Unicode(
        "",
        config=True,
        help="RabbitMQ URL of the User Office event stream (amqp://user:password@host:5672/vhost). Empty: no "
             "events, changes apply after cache_ttl. The password is never logged.",
    )
    email_fallback = Bool(
        True,
        config=True,
        help="Look a user up by her verified email when no User Office user has her OIDC subject (users who "
             "never logged in to the User Office). A user whose oidcSub differs is never matched by email.",
    )
    role_mapping = Dict(
        {"instrument_scientist": "staff", "user_officer": "staff"},
        config=True,
        help="User Office role short codes that grant visa-hub site roles (staff, support, admin).",
    )
    page_size = Int(200, config=True, help="Proposals fetched per request when listing every experiment for staff.")
    race_retries = Int(
        3,
        config=True,
        help="How often a lookup is asked again when a User Office event about the same user or proposals "
             "arrived while it was on its way (its answer may predate the event). After that the lookup counts "
             "as unavailable: the cached answer, patched by the events, is used.",
    )

    cache = Instance(UserOfficeCache)

    @default("cache")
    def _default_cache(self) -> UserOfficeCache:
        return UserOfficeCache()

    _events: Any = None

    # -- HTTP -------------------------------------------------------------------------------------------
    @property
    def http(self) -> SimpleAsyncHTTPClient:
        # the simple client never logs request headers (our token), whatever the log level
        if getattr(self, "_http", None) is None:
            self._http = SimpleAsyncHTTPClient(force_instance=True)
        return self._http

    async def query(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """POST one GraphQL query; its ``data``. Raises UserOfficeUnavailable with a reason for operators."""
        began = time.monotonic()
        try:
            data = await self._query(query, variables)
        except UserOfficeUnavailable:
            metrics.useroffice_reachable("graphql", False, time.monotonic() - began)
            raise
        metrics.useroffice_reachable("graphql", True, time.monotonic() - began)
        return data

    async def _query(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        if not self.url:
            raise UserOfficeUnavailable("GraphQLUserOffice.url is not configured")
        request = HTTPRequest(
            self.url,
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json",
                     **({"Authorization": f"Bearer {self.token}"} if self.token else {})},
            body=json.dumps({"query": query, "variables": variables}),
            request_timeout=self.timeout,
            connect_timeout=self.connect_timeout,
        )
        try:
            response = await self.http.fetch(request)
        except HTTPClientError as exc:
            if exc.code == 599:
                raise UserOfficeUnavailable(f"no answer from {self.url} within {self.timeout:g} s "
                                            f"({exc.message})") from None
            if exc.code == 401:
                raise UserOfficeUnavailable(
                    f"{self.url} refused the API token (HTTP 401): check GraphQLUserOffice.token") from None
            raise UserOfficeUnavailable(f"{self.url} answered HTTP {exc.code}") from None
        except OSError as exc:
            raise UserOfficeUnavailable(f"cannot reach {self.url}: {exc.strerror or exc}") from None
        try:
            body = json.loads(response.body)
        except ValueError:
            raise UserOfficeUnavailable(f"{self.url} answered something that is not JSON") from None
        if not isinstance(body, dict):
            raise UserOfficeUnavailable(f"{self.url} answered JSON that is not a GraphQL response")
        data = body.get("data")
        errors = body.get("errors") or []
        if errors:
            messages = "; ".join(str(e.get("message", e))[:200] for e in errors if isinstance(e, dict)) or errors
            if not isinstance(data, dict) or all(value is None for value in data.values()):
                raise UserOfficeUnavailable(f"the User Office answered with errors: {messages}")
            self.log.warning("User Office answered with errors (using the rest): %s", messages)
        if not isinstance(data, dict):
            raise UserOfficeUnavailable("the User Office answered without data")
        return data

    # -- events -----------------------------------------------------------------------------------------
    def start_events(self) -> None:
        """Start consuming the event stream (once, in the running event loop) if amqp_url is set."""
        if self._events is not None or not self.amqp_url:
            return
        from .events import UserOfficeEvents

        self._events = UserOfficeEvents(parent=self, url=self.amqp_url, cache=self.cache)
        self._events.start()

    async def stop_events(self) -> None:
        if self._events is not None:
            await self._events.stop()
            self._events = None

    # -- lookups ----------------------------------------------------------------------------------------
    async def _fetch_user(self, subject: str | None, email: str | None) -> UserRecord | None:
        """Ask the User Office about a login; store and return her record (None: unknown)."""
        for _attempt in range(self.race_retries + 1):
            since = self.cache.generation
            data = await self._query_user(subject, email)
            if data is None:
                return None
            user = parse_user(data)
            if user is None:
                raise UserOfficeUnavailable("the User Office's answer about this user is malformed (see the log)")
            proposals = [p for p in (parse_proposal(d) for d in _objects(data.get("proposals"))) if p]
            if self.cache.store_user(user, proposals, time.monotonic(), since=since):
                return user
            self.log.info("User Office answer about user %s crossed an event about her: asking again", user.id)
        raise UserOfficeUnavailable("events about this user kept arriving while she was looked up")

    async def _query_user(self, subject: str | None, email: str | None) -> dict[str, Any] | None:
        data: dict[str, Any] | None = None
        if subject:
            data = (await self.query(USER_BY_SUBJECT, {"sub": subject})).get("user")
        if data is None and email and self.email_fallback:
            basic = (await self.query(USER_ID_BY_EMAIL, {"email": email})).get("basic")
            if isinstance(basic, dict) and isinstance(basic.get("id"), int):
                if not may_match(basic.get("oidc_sub"), subject):
                    self.log.warning("Login with OIDC subject %s refused: User Office user %s has its email but "
                                     "another OIDC subject", subject, basic["id"])
                    raise IdentityConflict(f"User Office user {basic['id']} has this email and another OIDC subject")
                data = (await self.query(USER_BY_ID, {"id": basic["id"]})).get("user")
        if not isinstance(data, dict):
            self.log.info(
                "The User Office knows no user with OIDC subject %s%s. If she is registered there, check that the "
                "API token has the permissions %s (without them user-office-core answers null, like for an "
                "unknown user).", subject, f" or email {email}" if email and self.email_fallback else "",
                ", ".join(REQUIRED_PERMISSIONS))
            return None
        if not may_match(data.get("oidcSub"), subject):  # changed between the two queries
            raise IdentityConflict(f"User Office user {data.get('id')} has another OIDC subject")
        return data

    def _person(self, username: str | None, user: UserRecord) -> Person:
        experiments: dict[str, Experiment] = {}
        for proposal, role in self.cache.proposals_of(user.id):
            for experiment in experiments_for(proposal, role):
                experiments.setdefault(experiment.code, experiment)
        return Person(
            username=username or user.email or str(user.id),
            name=user.name,
            email=user.email,
            subject=user.subject,
            roles=site_roles_from(user.roles, self.role_mapping),
            experiments=tuple(experiments.values()),
        )

    async def find_person(
        self, *, username: str | None = None, subject: str | None = None, email: str | None = None
    ) -> Person | None:
        """Her User Office record (cached for cache_ttl; events refresh it); None if the User Office says unknown."""
        self.start_events()
        if not (subject or email):
            return None
        email = email if self.email_fallback else None
        cached = self.cache.find_user(subject=subject, email=email)
        now = time.monotonic()
        if cached and self.cache.is_fresh(cached, now, self.cache_ttl):
            metrics.useroffice_lookup("graphql", "cached")
            return self._person(username, cached.user)
        try:
            user = await self._fetch_user(subject, email)
        except UserOfficeUnavailable as exc:
            metrics.useroffice_lookup("graphql", "stale_cache" if self.cache.find_user(subject=subject, email=email)
                                      else "unavailable")
            cached = self.cache.find_user(subject=subject, email=email)  # events may have changed it meanwhile
            if cached is None:
                owner = self.cache.email_owner(email)
                if owner is not None and not may_match(owner.subject, subject):
                    self.log.warning("User Office unavailable (%s); login with OIDC subject %s refused: the cached "
                                     "User Office user %s has its email and another OIDC subject", exc, subject,
                                     owner.id)
                    raise IdentityConflict(f"User Office user {owner.id} has this email and another OIDC subject") \
                        from None
                raise
            self.log.warning("User Office unavailable (%s): using what it said about %s %.0f s ago",
                             exc, username or subject, now - cached.fetched_at)
            return self._person(username, cached.user)
        metrics.useroffice_lookup("graphql", "fresh" if user else "unknown")
        return self._person(username, user) if user else None

    async def _fetch_all_proposals(self) -> list[ProposalRecord]:
        proposals: list[ProposalRecord] = []
        offset = 0
        while True:
            page = (await self.query(ALL_PROPOSALS, {"first": self.page_size, "offset": offset})).get("proposals")
            if not isinstance(page, dict):
                raise UserOfficeUnavailable("the User Office did not list proposals (does the API token have "
                                            "ProposalQueries.getAll?)")
            batch = _objects(page.get("proposals"))
            proposals.extend(p for p in (parse_proposal(d) for d in batch) if p)
            offset += len(batch)
            total = page.get("totalCount")
            if not batch or not isinstance(total, int) or offset >= total:
                return proposals

    async def site_experiments(self) -> list[Experiment]:
        """Every scheduled experiment (offered to staff); the cached list when the User Office is down."""
        self.start_events()
        now = time.monotonic()
        fetched = self.cache.site_fetched_at
        if fetched is None or now - fetched >= self.cache_ttl:
            since = self.cache.generation
            try:
                if not self.cache.store_site(await self._fetch_all_proposals(), now, since=since):
                    self.log.info("The list of every proposal crossed User Office events: the cached one (with "
                                  "the events) is used, the list is asked again next time")
            except UserOfficeUnavailable as exc:
                self.log.warning("User Office unavailable (%s): staff see the experiments known so far", exc)
        experiments: dict[str, Experiment] = {}
        for proposal in self.cache.proposals.values():
            for experiment in experiments_for(proposal, role=""):
                experiments.setdefault(experiment.code, experiment)
        return list(experiments.values())

    async def people(self) -> list[Person]:
        raise NotImplementedError(
            "the GraphQL User Office has no login names for its users (a Keycloak login name is only known once she "
            "logs in): visa-hub slurm-sync cannot list experiment members from it yet")


def _objects(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
