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


class UserOffice(LoggingConfigurable):
    """Interface every User Office backend implements."""

    async def find_person(
        self, *, username: str | None = None, subject: str | None = None, email: str | None = None
    ) -> Person | None:
        """The person with this OIDC subject, else this email, else this username; ``None`` if unknown.

        Raises :class:`UserOfficeUnavailable` when the User Office cannot answer.
        """
        raise NotImplementedError

    async def site_experiments(self) -> list[Experiment]:
        """Every experiment the User Office knows (offered to staff, who may use any experiment)."""
        raise NotImplementedError
