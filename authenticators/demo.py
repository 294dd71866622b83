"""Demo login: any person of the demo User Office, with one shared password.

Same ``auth_state`` shape, hub groups and refusals as the Keycloak authenticator, so the rest of the
product cannot tell the difference. Never use this in production.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from traitlets import default

from .base import UserOfficeAuthorizationMixin


class DemoAuthenticator(UserOfficeAuthorizationMixin, SharedPasswordAuthenticator):
    """Log in as a demo User Office person with the shared demo password."""

    @default("user_password")
    def _user_password_default(self) -> str:
        return "visa-demo"

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        # who may use the service is decided by the User Office and the policy, not by a list here
        return True

    async def authenticate(self, handler, data: dict[str, str]) -> dict[str, Any] | None:
        checked = await super().authenticate(handler, data)
        if checked is None:
            return None  # wrong password: JupyterHub's "Invalid username or password"
        person = await self.lookup_person(username=checked["name"])
        return self.user_model(person)

    async def refresh_user(self, user, handler=None) -> bool | dict[str, Any]:
        """Re-read the User Office, so membership changes apply at the next spawn."""
        return await self.refresh_from_user_office(user, username=user.name)
