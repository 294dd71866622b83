"""Who a user is, as the User Office sees her: experiments, roles. Pure data, serialisable to auth_state."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

# Member roles on an experiment, as the User Office names them.
PRINCIPAL_INVESTIGATOR = "principal-investigator"
CO_PROPOSER = "co-proposer"
LOCAL_CONTACT = "local-contact"
EXPERIMENT_ROLES = (PRINCIPAL_INVESTIGATOR, CO_PROPOSER, LOCAL_CONTACT)

# Site roles (from Keycloak realm/client roles or the User Office).
STAFF = "staff"  # may start instances for any experiment
SUPPORT = "support"  # may join a session when its owner accepts
ADMIN = "admin"  # hub administrator
SITE_ROLES = (STAFF, SUPPORT, ADMIN)


@dataclass(frozen=True)
class Experiment:
    """A User Office proposal scheduled on an instrument, and this person's role in it.

    ``role`` is ``None`` where she has none: staff see every experiment of the site, members of few.
    """

    code: str
    title: str
    instrument: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    proposal_pk: int | None = None
    local_contact: str | None = None
    role: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "title": self.title,
            "instrument": self.instrument,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "proposal_pk": self.proposal_pk,
            "local_contact": self.local_contact,
            "role": self.role,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        return cls(
            code=data["code"],
            title=data["title"],
            instrument=data["instrument"],
            starts_at=dt.datetime.fromisoformat(data["starts_at"]),
            ends_at=dt.datetime.fromisoformat(data["ends_at"]),
            proposal_pk=data.get("proposal_pk"),
            local_contact=data.get("local_contact"),
            role=data.get("role") or None,
        )


@dataclass(frozen=True)
class Person:
    """A user of the service with her experiments and site roles."""

    username: str
    name: str
    email: str = ""
    subject: str | None = None  # OIDC subject
    roles: frozenset[str] = field(default_factory=frozenset)
    experiments: tuple[Experiment, ...] = ()

    @property
    def is_staff(self) -> bool:
        return STAFF in self.roles or ADMIN in self.roles

    def experiment(self, code: str) -> Experiment | None:
        return next((e for e in self.experiments if e.code == code), None)

    def to_dict(self) -> dict[str, Any]:
        """The shape kept in JupyterHub's encrypted ``auth_state`` (shared by every authenticator)."""
        return {
            "username": self.username,
            "name": self.name,
            "email": self.email,
            "subject": self.subject,
            "roles": sorted(self.roles),
            "experiments": [e.to_dict() for e in self.experiments],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Person:
        return cls(
            username=data["username"],
            name=data.get("name") or data["username"],
            email=data.get("email") or "",
            subject=data.get("subject"),
            roles=frozenset(data.get("roles") or ()),
            experiments=tuple(Experiment.from_dict(e) for e in data.get("experiments") or ()),
        )


#: The hub group of people with the site role ``support`` (the operator console's read-only role is given to it).
SUPPORT_GROUP = "visa-support"


def hub_groups(person: Person) -> list[str]:
    """JupyterHub groups for a person: ``proposal:<code>`` and ``instrument:<name>`` per experiment, and
    :data:`SUPPORT_GROUP` for support staff."""
    groups = {f"proposal:{e.code}" for e in person.experiments}
    groups |= {f"instrument:{e.instrument}" for e in person.experiments}
    if SUPPORT in person.roles:
        groups.add(SUPPORT_GROUP)
    return sorted(groups)
