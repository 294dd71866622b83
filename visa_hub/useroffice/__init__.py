"""The User Office: who is a member of which experiment, on which instrument, when; who is staff.

One interface, several backends: :class:`~visa_hub.useroffice.file.FileUserOffice` (demo data from YAML,
the default) and :class:`~visa_hub.useroffice.graphql.GraphQLUserOffice` (ESS's user-office-core over
GraphQL, cached, kept current by its RabbitMQ events: ``cache.py``, ``events.py``). Authenticators gather
facts through it; the policy decides what the facts allow.
"""

from __future__ import annotations

from traitlets.config import LoggingConfigurable

from ..people import Experiment, Person


class UserOfficeUnavailable(RuntimeError):
    """The User Office cannot answer right now (down, slow, misconfigured)."""


class IdentityConflict(LookupError):
    """The login's e-mail (or username) belongs to a User Office user with another OIDC subject.

    Two logins with one e-mail address are two people as far as visa-hub knows: the second gets nothing.
    """


def may_match(record_subject: str | None, login_subject: str | None) -> bool:
    """Whether a User Office record found by e-mail or username may stand for this login.

    Only when the record has no OIDC subject yet (she never logged in to the User Office) or has the
    login's own. The same rule holds on every path: a fresh answer, the cache, and the cache in an outage.
    """
    return not record_subject or not login_subject or record_subject == login_subject


class UserOffice(LoggingConfigurable):
    """Interface every User Office backend implements."""

    async def find_person(
        self, *, username: str | None = None, subject: str | None = None, email: str | None = None
    ) -> Person | None:
        """The person with this OIDC subject, else this email, else this username; ``None`` if unknown.

        A person found by email or username whose OIDC subject is not the login's is not her
        (:func:`may_match`): :class:`IdentityConflict`. Raises :class:`UserOfficeUnavailable` when the User
        Office cannot answer.
        """
        raise NotImplementedError

    async def site_experiments(self) -> list[Experiment]:
        """Every experiment the User Office knows (offered to staff, who may use any experiment)."""
        raise NotImplementedError

    async def people(self) -> list[Person]:
        """Everyone the User Office knows, with her login name, experiments and site roles.

        Used by ``visa-hub slurm-sync`` to give each experiment's members an association in its Slurm account.
        A backend that cannot map its users to login names raises :class:`NotImplementedError` with the reason.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot list the User Office's people with their login names")
