"""Demo User Office: people and experiments from a YAML file (same interface as the GraphQL client).

Dates may be absolute (``2026-05-04``) or relative to today (``today-3d``, ``today+10d``) so that the demo
data always has a running experiment. The file is re-read when it changes.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from traitlets import Unicode

from .. import metrics
from ..people import EXPERIMENT_ROLES, LOCAL_CONTACT, SITE_ROLES, Experiment, Person
from ..sitedata import Node, load_yaml
from . import IdentityConflict, UserOffice, may_match

_RELATIVE = re.compile(r"^today\s*(?:([+-])\s*(\d+)\s*d)?$")


def _day(node: Node, today: dt.date) -> dt.date:
    if isinstance(node.value, str):
        match = _RELATIVE.match(node.value.strip())
        if match:
            sign, days = match.groups()
            offset = int(days or 0) * (-1 if sign == "-" else 1)
            return today + dt.timedelta(days=offset)
    try:
        return node.date()
    except ValueError:
        raise node.error(f"must be a date like 2026-05-04 or today+3d, got {node.value!r}") from None


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.UTC)


def parse_user_office(root: Node, today: dt.date) -> tuple[dict[str, Person], list[Experiment]]:
    """Validate a demo User Office document into people (by username) and the site's experiments."""
    root.mapping(allowed={"people", "experiments"})
    people_nodes = list(root.key("people").items())
    base: dict[str, dict] = {}
    for node in people_nodes:
        node.mapping(allowed={"username", "name", "email", "subject", "roles"})
        username = node.key("username").text()
        if username in base:
            raise node.key("username").error(f"duplicate username {username!r}")
        roles_node = node.key("roles", [])
        for item in roles_node.items():
            item.text(choices=set(SITE_ROLES))
        base[username] = {
            "username": username,
            "name": node.key("name", username).text(),
            "email": node.key("email", f"{username}@example.org").text(),
            "subject": node.key("subject", None).optional_text(),
            "roles": frozenset(roles_node.text_list()),
            "experiments": [],
        }

    site_experiments: list[Experiment] = []
    seen_codes: set[str] = set()
    for node in root.key("experiments", []).items():
        node.mapping(allowed={"code", "proposal_pk", "title", "instrument", "starts", "ends", "local_contact",
                              "members"})
        code = str(node.key("code").value)
        if code in seen_codes:
            raise node.key("code").error(f"duplicate experiment code {code!r}")
        seen_codes.add(code)
        starts = _day(node.key("starts"), today)
        ends_node = node.key("ends")
        ends = _day(ends_node, today)
        if ends < starts:
            raise ends_node.error(f"ends ({ends}) before it starts ({starts})")
        local_contact = node.key("local_contact", None).optional_text()
        if local_contact is not None and local_contact not in base:
            raise node.key("local_contact").error(f"unknown person {local_contact!r}")
        pk_node = node.key("proposal_pk", None)
        experiment = Experiment(
            code=code,
            title=node.key("title").text(),
            instrument=node.key("instrument").text(),
            starts_at=_midnight(starts),
            ends_at=_midnight(ends + dt.timedelta(days=1)),  # the whole last day
            proposal_pk=None if pk_node.value is None else pk_node.number(integer=True),
            local_contact=local_contact,
        )
        site_experiments.append(experiment)
        members = node.key("members").mapping(allowed=set(EXPERIMENT_ROLES) - {LOCAL_CONTACT})
        memberships = [(role, item) for role, names in members.items() for item in names.items()]
        if local_contact:
            memberships.append((LOCAL_CONTACT, node.key("local_contact")))
        for role, item in memberships:
            username = item.text()
            if username not in base:
                raise item.error(f"unknown person {username!r} (add them under people)")
            mine = base[username]["experiments"]
            if not any(e.code == code for e in mine):
                mine.append(Experiment(**{**experiment.__dict__, "role": role}))

    people = {
        name: Person(**{**data, "experiments": tuple(data["experiments"])}) for name, data in base.items()
    }
    return people, site_experiments


class FileUserOffice(UserOffice):
    """User Office backed by a YAML file (the demo default)."""

    path = Unicode(
        "",
        config=True,
        help="YAML file with people and experiments (see visa_hub/demo/useroffice.yaml). Empty: the demo data.",
    )

    _cache: tuple[float, dt.date, dict[str, Person], list[Experiment]] | None = None

    def _load(self) -> tuple[dict[str, Person], list[Experiment]]:
        from ..demo import DEMO_USER_OFFICE

        path = Path(self.path or DEMO_USER_OFFICE)
        mtime, today = path.stat().st_mtime, dt.datetime.now(dt.UTC).date()
        if self._cache is None or self._cache[:2] != (mtime, today):
            people, experiments = parse_user_office(load_yaml(path), today)
            self._cache = (mtime, today, people, experiments)
            self.log.info("User Office (file %s): %d people, %d experiments", path, len(people), len(experiments))
        return self._cache[2], self._cache[3]

    async def find_person(
        self, *, username: str | None = None, subject: str | None = None, email: str | None = None
    ) -> Person | None:
        people, _ = self._load()
        for person in people.values():
            if subject and person.subject == subject:
                metrics.useroffice_lookup("file", "fresh")
                return person
        found = next((p for p in people.values() if email and p.email.casefold() == email.casefold()), None)
        if found is None and username:
            found = people.get(username)
        if found is not None and not may_match(found.subject, subject):
            raise IdentityConflict(f"{found.username} in {self.path or 'the demo User Office'} has another "
                                   "OIDC subject than this login")
        metrics.useroffice_lookup("file", "fresh" if found else "unknown")
        return found

    async def site_experiments(self) -> list[Experiment]:
        return list(self._load()[1])

    async def people(self) -> list[Person]:
        return list(self._load()[0].values())
