"""User Office authorization shared by every visa-hub authenticator.

The authenticator establishes *who* logged in (OIDC, or the demo's shared password); this mixin asks the
User Office *what she belongs to* and turns it into JupyterHub's user model: encrypted ``auth_state``
(the person and her experiments), managed groups ``proposal:<code>`` / ``instrument:<name>``, admin flag.
Whether she may use the service is the policy's decision (:mod:`visa_hub.policy`).

No instance starts without a membership decision: :meth:`UserOfficeAuthorizationMixin.pre_spawn_start` asks
the User Office again right before every spawn, whatever happened to the login refresh (JupyterHub refreshes
a user at most once per request, never when ``auth_refresh_age`` is 0, and the identity provider may be
down). The User Office client's cache, patched by its events, may answer during an outage; when nothing can
answer, the spawn is refused with a message saying so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Set
from typing import Any

from tornado import web
from traitlets import Bool, default
from traitlets.config import LoggingConfigurable

from visa_hub import metrics
from visa_hub.people import ADMIN, Person, hub_groups
from visa_hub.policy import may_use_service, refusal_reason
from visa_hub.site import VisaSite
from visa_hub.useroffice import IdentityConflict, UserOfficeUnavailable


def refusal(status: int, message: str) -> web.HTTPError:
    """An HTTP error whose message JupyterHub's error page shows to the user as is."""
    error = web.HTTPError(status, "%s", message)
    error.jupyterhub_message = message  # type: ignore[attr-defined]
    return error


class UserOfficeAuthorizationMixin(LoggingConfigurable):
    """Mixin for :class:`jupyterhub.auth.Authenticator` subclasses: authorization from the User Office."""

    admin_from_roles = Bool(
        True,
        config=True,
        help="Make users with the 'admin' site role JupyterHub admins (and others not).",
    )

    @default("enable_auth_state")
    def _enable_auth_state_default(self) -> bool:
        return True

    @default("manage_groups")
    def _manage_groups_default(self) -> bool:
        return True

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn_default(self) -> bool:
        # a user removed from a proposal must lose it at her next spawn
        return True

    @default("auth_refresh_age")
    def _auth_refresh_age_default(self) -> int:
        return 300

    @property
    def site(self) -> VisaSite:
        return VisaSite.instance(config=self.config, log=self.log)

    async def lookup_person(
        self,
        *,
        username: str | None = None,
        subject: str | None = None,
        email: str | None = None,
        extra_roles: Set[str] = frozenset(),
    ) -> Person:
        """The User Office's view of a user who just proved who she is; refusals are clear HTTP errors.

        ``extra_roles``: site roles the identity provider grants (e.g. Keycloak's staff), added to hers.
        """
        try:
            person = await self.site.user_office.find_person(username=username, subject=subject, email=email)
        except UserOfficeUnavailable as exc:
            self.log.warning("User Office unavailable while looking up %s: %s", username or subject, exc)
            raise refusal(
                503, "The User Office is unavailable, so we cannot check your experiments. "
                     "Please try again in a few minutes."
            ) from None
        except IdentityConflict as exc:
            self.log.warning("Login refused for %s (OIDC subject %s): %s", username or "?", subject or "-", exc)
            raise refusal(
                403, "The User Office knows your e-mail address under another login, so this login gets no "
                     "experiments. Log in with the account you use for the User Office, or ask the User Office "
                     "to link this one."
            ) from None
        if person is None:
            self.log.info("Login refused for %s: unknown to the User Office", username or subject)
            raise refusal(
                403, f"{username or 'This account'} is not registered in the User Office. Register there "
                     "(or ask your principal investigator to add you to the proposal), then log in again."
            )
        if extra_roles - person.roles:
            person = dataclasses.replace(person, roles=person.roles | frozenset(extra_roles))
        return person

    async def refresh_from_user_office(
        self,
        user,
        *,
        extra_state: dict[str, Any] | None = None,
        extra_roles: Set[str] = frozenset(),
        **lookup: str | None,
    ) -> bool | dict[str, Any]:
        """``refresh_user`` for every authenticator: re-read the User Office before a spawn.

        Unavailable User Office → keep the last known facts (True, or the previous ``auth_state`` updated
        with ``extra_state``, e.g. fresh tokens); refused now → log in again (False).
        """
        try:
            model = self.user_model(await self.lookup_person(extra_roles=extra_roles, **lookup), extra_state)
        except web.HTTPError as exc:
            if exc.status_code == 503:
                self.log.warning("Keeping cached experiments of %s: User Office unavailable", user.name)
                if extra_state:
                    previous = await user.get_auth_state() or {}
                    # with managed groups JupyterHub wants them in every model: keep the ones she has
                    return {"name": user.name, "auth_state": {**previous, **extra_state},
                            "groups": [group.name for group in user.groups]}
                return True
            self.log.info("Refresh of %s refused: %s", user.name, exc.log_message % exc.args)
            return False
        # nothing changed: JupyterHub would still encrypt and write her auth_state (and commit) at every refresh
        return True if await self._unchanged(user, model) else model

    @staticmethod
    async def _unchanged(user, model: dict[str, Any]) -> bool:
        """Whether ``model`` says what the hub already has for ``user`` (auth_state, groups, admin)."""
        if "admin" in model and bool(model["admin"]) != bool(user.admin):
            return False
        if sorted(group.name for group in user.groups) != sorted(model["groups"]):
            return False
        return (await user.get_auth_state() or {}) == model["auth_state"]

    # -- the decision before every spawn -----------------------------------------------------------------
    def identity_of(self, user, auth_state: dict[str, Any]) -> dict[str, str | None]:
        """How to ask the User Office about a logged-in user (OIDC authenticators add subject and email)."""
        return {"username": user.name}

    def roles_of(self, auth_state: dict[str, Any]) -> frozenset[str]:
        """Site roles the identity provider granted at the last login or refresh."""
        return frozenset()

    async def pre_spawn_start(self, user, spawner) -> None:
        """Decide membership right before the spawn: the User Office's answer (or its cached one during an
        outage) goes into ``auth_state``, which the spawner's plan reads; no answer at all → no instance."""
        auth_state = await user.get_auth_state() or {}
        try:
            person = await self.lookup_person(extra_roles=self.roles_of(auth_state),
                                              **self.identity_of(user, auth_state))
            model = self.user_model(person)
        except web.HTTPError as exc:
            reason = getattr(exc, "jupyterhub_message", None) or "refused"
            self.log.warning("Spawn of %s refused before start: %s", user.name, reason)
            metrics.spawn_failed(spawner, "useroffice" if exc.status_code == 503 else "membership")
            if exc.status_code == 503:
                raise refusal(503, "No instance was started: the User Office cannot be reached, so we cannot "
                                   "check that you are still a member of your experiment. Please try again in "
                                   "a few minutes.") from None
            raise
        if auth_state.get("person") != model["auth_state"]["person"]:  # (refresh_pre_spawn has usually just
            await user.save_auth_state({**auth_state, "person": model["auth_state"]["person"]})  # written it)
        if self.manage_groups:
            user.sync_groups(model["groups"])
        self.log.info("Membership of %s checked before the spawn: %d experiment(s)", user.name,
                      len(person.experiments))

    def user_model(self, person: Person, extra_state: dict[str, Any] | None = None) -> dict[str, Any]:
        """JupyterHub's user model for a person the policy lets in, or a 403 with the reason."""
        site = self.site
        if not may_use_service(person, site.catalog, site.now()):
            reason = refusal_reason(person, site.catalog, site.now())
            self.log.info("Login refused for %s: no open experiment", person.username)
            raise refusal(403, reason)
        model: dict[str, Any] = {
            "name": person.username,
            "groups": hub_groups(person),
            "auth_state": {"person": person.to_dict(), **(extra_state or {})},
        }
        if self.admin_from_roles:
            model["admin"] = ADMIN in person.roles
        return model
