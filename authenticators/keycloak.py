"""Keycloak login (OIDC) for visa-hub, with User Office authorization.

A thin :class:`~oauthenticator.generic.GenericOAuthenticator`: the operator gives the realm URL and the
client credentials, the endpoints come from the realm's discovery document (fetched when first needed,
so the hub starts even while Keycloak is down)::

    c.JupyterHub.authenticator_class = "visa-keycloak"
    c.KeycloakAuthenticator.realm_url = "https://keycloak.ess.eu/realms/ess"
    c.KeycloakAuthenticator.client_id = "visa-hub"
    c.KeycloakAuthenticator.client_secret = "..."

Authorization code flow with PKCE; tokens live in the encrypted ``auth_state`` and are refreshed shortly
before they expire (:meth:`KeycloakAuthenticator.refresh_user`, also before every spawn). Logout ends the
Keycloak session too (RP-initiated logout with ``id_token_hint``). Site roles (staff, support, admin)
come from Keycloak realm and client roles; experiments come from the User Office
(:class:`~authenticators.base.UserOfficeAuthorizationMixin`). No token or secret is ever logged.
"""

from __future__ import annotations

import time
from functools import reduce
from typing import Any
from urllib.parse import urlencode

import jwt
from jupyterhub.utils import url_path_join
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLoginHandler, OAuthLogoutHandler
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Bool, Dict, Float, Unicode, default

from visa_hub.people import SITE_ROLES, Person, hub_groups

from .base import UserOfficeAuthorizationMixin, refusal

TOKEN_KEYS = ("access_token", "refresh_token", "id_token", "token_response")


class KeycloakLoginHandler(OAuthLoginHandler):
    """Redirect to Keycloak, after making sure its endpoints are known."""

    async def get(self) -> None:  # type: ignore[override]
        await self.authenticator.discover()
        super().get()


class KeycloakLogoutHandler(OAuthLogoutHandler):
    """Log out of the hub, then end the Keycloak session (RP-initiated logout)."""

    _keycloak_logout: str | None = None

    async def handle_logout(self) -> None:
        await super().handle_logout()
        user = self.current_user
        if user is None or not self.authenticator.end_keycloak_session:
            return
        auth_state = await user.get_auth_state() or {}
        try:
            self._keycloak_logout = await self.authenticator.end_session_redirect(self, auth_state.get("id_token"))
        except web.HTTPError:
            self.log.warning("Keycloak unreachable: %s logged out of the hub only", user.name)
            return
        # the tokens are dead once Keycloak ends the session: do not keep them
        await user.save_auth_state({k: v for k, v in auth_state.items() if k not in TOKEN_KEYS})

    async def render_logout_page(self) -> None:
        if self._keycloak_logout:
            self.redirect(self._keycloak_logout)
            return
        await super().render_logout_page()


class KeycloakAuthenticator(UserOfficeAuthorizationMixin, GenericOAuthenticator):
    """Log in with the facility's Keycloak realm; experiments and access from the User Office."""

    login_handler = KeycloakLoginHandler
    logout_handler = KeycloakLogoutHandler

    realm_url = Unicode(
        "",
        config=True,
        help="The Keycloak realm, e.g. https://keycloak.ess.eu/realms/ess. Its discovery document "
             "(<realm_url>/.well-known/openid-configuration) gives every endpoint not configured explicitly.",
    )
    discovery_timeout = Float(10.0, config=True, help="Seconds to wait for the realm's discovery document.")
    end_session_url = Unicode(
        "",
        config=True,
        help="Keycloak's end-session endpoint (RP-initiated logout). Empty: from the discovery document.",
    )
    end_keycloak_session = Bool(
        True,
        config=True,
        help="Logging out of the hub also ends the Keycloak session, so the next login asks for the password.",
    )
    post_logout_redirect_url = Unicode(
        "",
        config=True,
        help="Where Keycloak sends the user after logout (must be a valid post-logout redirect URI of the client). "
             "Empty: the hub's login page.",
    )
    realm_roles_claim = Unicode(
        "realm_access.roles",
        config=True,
        help="Dotted path of the realm roles in Keycloak's tokens or userinfo.",
    )
    client_roles_claim = Unicode(
        "resource_access.{client_id}.roles",
        config=True,
        help="Dotted path of this client's roles in Keycloak's tokens or userinfo; {client_id} is replaced by "
             "the client id (which may itself contain dots).",
    )
    role_mapping = Dict(
        {"staff": "staff", "support": "support", "admin": "admin"},
        config=True,
        help="Keycloak realm or client role → visa-hub site role (staff, support, admin). Roles not listed "
             "give nothing; a hub admin is whoever gets 'admin'.",
    )
    token_refresh_margin = Float(
        60.0,
        config=True,
        help="Refresh the access token when it expires within this many seconds (checked at every refresh of "
             "the user, see auth_refresh_age, and before every spawn).",
    )

    _discovery: dict[str, Any] | None = None

    @default("login_service")
    def _login_service_default(self) -> str:
        return "ESS account"

    @default("username_claim")
    def _username_claim_default(self) -> str:
        return "preferred_username"

    @default("scope")
    def _scope_default(self) -> list[str]:
        return ["openid", "profile", "email"]

    @default("enable_pkce")
    def _enable_pkce_default(self) -> bool:
        return True

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        # who may use the service is decided by the User Office and the policy
        return True

    @default("auto_login")
    def _auto_login_default(self) -> bool:
        return True

    # -- discovery -------------------------------------------------------------------------------------
    async def discover(self) -> dict[str, Any]:
        """The realm's OIDC discovery document (fetched once); fills in endpoints not configured."""
        if self._discovery is not None:
            return self._discovery
        if not self.realm_url:
            if not (self.authorize_url and self.token_url and self.userdata_url):
                raise refusal(500, "Login is not configured: set KeycloakAuthenticator.realm_url.")
            self._discovery = {}
            return self._discovery
        url = self.realm_url.rstrip("/") + "/.well-known/openid-configuration"
        try:
            document = await self.httpfetch(url, "fetching the realm's discovery document",
                                            request_timeout=self.discovery_timeout,
                                            connect_timeout=self.discovery_timeout)
        except (HTTPClientError, OSError, ValueError) as exc:
            self.log.warning("Keycloak realm %s unreachable: %s", self.realm_url, exc)
            raise refusal(503, "The login service (Keycloak) cannot be reached right now. "
                               "Please try again in a few minutes.") from None
        if not isinstance(document, dict) or "authorization_endpoint" not in document:
            self.log.error("%s is not an OIDC discovery document", url)
            raise refusal(503, "The login service (Keycloak) is misconfigured. Please contact support.")
        if document.get("issuer", "").rstrip("/") != self.realm_url.rstrip("/"):
            self.log.warning("Realm %s announces issuer %s", self.realm_url, document.get("issuer"))
        self.authorize_url = self.authorize_url or document["authorization_endpoint"]
        self.token_url = self.token_url or document["token_endpoint"]
        self.userdata_url = self.userdata_url or document.get("userinfo_endpoint", "")
        self.end_session_url = self.end_session_url or document.get("end_session_endpoint", "")
        self.log.info("Keycloak realm %s: endpoints from its discovery document", self.realm_url)
        self._discovery = document
        return document

    async def end_session_redirect(self, handler: web.RequestHandler, id_token: str | None) -> str | None:
        """The Keycloak URL that ends her session and comes back to the hub; None without an endpoint."""
        await self.discover()
        if not self.end_session_url:
            return None
        back = self.post_logout_redirect_url or (
            f"{handler.request.protocol}://{handler.request.host}"
            f"{url_path_join(handler.hub.base_url, 'login')}"
        )
        params = {"post_logout_redirect_uri": back, "client_id": self.client_id}
        if id_token:
            params["id_token_hint"] = id_token
        return f"{self.end_session_url}?{urlencode(params)}"

    # -- claims → site roles --------------------------------------------------------------------------
    @staticmethod
    def _jwt_claims(token: Any) -> dict[str, Any]:
        """Claims of a token received straight from the token endpoint (no signature check needed there)."""
        if not isinstance(token, str) or token.count(".") != 2:
            return {}
        try:
            claims = jwt.decode(token, options={"verify_signature": False, "verify_aud": False,
                                                "verify_exp": False})
        except jwt.PyJWTError:
            return {}
        return claims if isinstance(claims, dict) else {}

    def claim_sources(self, auth_state: dict[str, Any]) -> list[dict[str, Any]]:
        """userinfo, then the access token, then the ID token (Keycloak puts roles in the access token)."""
        userinfo = auth_state.get(self.user_auth_state_key) or {}
        return [userinfo if isinstance(userinfo, dict) else {},
                self._jwt_claims(auth_state.get("access_token")),
                self._jwt_claims(auth_state.get("id_token"))]

    def _at_path(self, claims: dict[str, Any], path: str) -> list[str]:
        template_parts = path.split(".")
        parts = [self.client_id if p == "{client_id}" else p for p in template_parts]
        value = reduce(lambda node, key: node.get(key) if isinstance(node, dict) else None, parts, claims)
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    def keycloak_roles(self, auth_state: dict[str, Any]) -> set[str]:
        roles: set[str] = set()
        for claims in self.claim_sources(auth_state):
            for path in (self.realm_roles_claim, self.client_roles_claim):
                if path:
                    roles.update(self._at_path(claims, path))
        return roles

    def site_roles(self, auth_state: dict[str, Any]) -> frozenset[str]:
        mapped = {self.role_mapping[r] for r in self.keycloak_roles(auth_state) if r in self.role_mapping}
        return frozenset(r for r in mapped if r in SITE_ROLES)

    def _identity(self, auth_state: dict[str, Any]) -> dict[str, str | None]:
        merged: dict[str, Any] = {}
        for claims in reversed(self.claim_sources(auth_state)):
            merged.update(claims)
        verified = merged.get("email_verified") is True
        return {"subject": merged.get("sub"), "email": merged.get("email") if verified else None}

    # -- tokens in auth_state -------------------------------------------------------------------------
    def build_auth_state_dict(self, token_info: dict[str, Any], user_info: dict[str, Any]) -> dict[str, Any]:
        state = super().build_auth_state_dict(token_info, user_info)
        now = time.time()
        if isinstance(token_info.get("expires_in"), int | float):
            state["expires_at"] = now + token_info["expires_in"]
        if isinstance(token_info.get("refresh_expires_in"), int | float) and token_info["refresh_expires_in"]:
            state["refresh_expires_at"] = now + token_info["refresh_expires_in"]
        return state

    async def get_user_groups(self, auth_state: dict[str, Any]) -> set[str]:
        """Hub groups ``proposal:<code>`` and ``instrument:<name>`` (not Keycloak groups)."""
        person = auth_state.get("person")
        return set(hub_groups(Person.from_dict(person))) if person else set()

    # -- login ----------------------------------------------------------------------------------------
    async def authenticate(self, handler, data=None, **kwargs):
        await self.discover()
        model = await super().authenticate(handler, data, **kwargs)
        if model:
            await self.check_same_subject(handler, model)
        return model

    async def check_same_subject(self, handler, model: dict[str, Any]) -> None:
        """Refuse a login whose hub user was created by another OIDC subject.

        JupyterHub finds users by name; a Keycloak login name can be given to someone else (an account deleted
        and re-created, a renamed person). The hub user keeps the subject of the person who created it, and a
        different subject under the same name is refused instead of inheriting her instances and home.
        """
        user = handler.find_user(model["name"])
        if user is None:
            return
        stored = await user.get_auth_state()
        known = self._identity(stored)["subject"] if stored else None
        presented = self._identity(model["auth_state"])["subject"]
        if known and presented and known != presented:
            self.log.warning("Login refused for %s: the hub user belongs to another identity (subject changed)",
                             model["name"])
            raise refusal(403, f"The login name {model['name']} belongs to another person on this service. "
                               "Please contact user support: your account needs to be set up again.")

    async def update_auth_model(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        """After OIDC succeeded: her experiments from the User Office, her roles from Keycloak."""
        auth_state = auth_model["auth_state"]
        person = await self.lookup_person(username=auth_model["name"], extra_roles=self.site_roles(auth_state),
                                          **self._identity(auth_state))
        model = self.user_model(person, extra_state=auth_state)
        self.log.info("%s logged in: roles %s, %d experiment(s)", person.username,
                      ", ".join(sorted(person.roles)) or "none", len(person.experiments))
        return model

    # -- refresh --------------------------------------------------------------------------------------
    async def _refresh_tokens(self, user, auth_state: dict[str, Any]) -> dict[str, Any] | None:
        """New tokens from the refresh token; None when Keycloak refuses it (she must log in again)."""
        refresh_token = auth_state.get("refresh_token")
        if not refresh_token:
            return None
        try:
            token_info = await self.get_token_info(None, self.build_refresh_token_request_params(refresh_token))
        except HTTPClientError as exc:
            if exc.code == 599 or exc.code >= 500:
                raise
            self.log.info("Keycloak refused to refresh the tokens of %s (HTTP %s): login required",
                          user.name, exc.code)
            return None
        except web.HTTPError as exc:
            self.log.info("Keycloak refused to refresh the tokens of %s (%s): login required", user.name,
                          exc.status_code)
            return None
        token_info.setdefault("refresh_token", refresh_token)
        self.log.info("Refreshed the Keycloak tokens of %s", user.name)
        return token_info

    def identity_of(self, user, auth_state: dict[str, Any]) -> dict[str, str | None]:
        return {"username": user.name, **self._identity(auth_state)}

    def roles_of(self, auth_state: dict[str, Any]) -> frozenset[str]:
        return self.site_roles(auth_state)

    async def _refresh_without_keycloak(self, user, auth_state: dict[str, Any]) -> bool | dict[str, Any]:
        """Keycloak is down: her login stands, her experiments still come from the User Office."""
        return await self.refresh_from_user_office(
            user, extra_state={k: v for k, v in auth_state.items() if k != "person"},
            extra_roles=self.roles_of(auth_state), **self.identity_of(user, auth_state),
        )

    async def refresh_user(self, user, handler=None, **kwargs):
        """Keep her tokens fresh and her experiments current; False sends her back to the login.

        Keycloak unreachable: her login stands and her experiments are re-read from the User Office; the User
        Office unreachable too: she keeps what is known. Spawns are decided again in ``pre_spawn_start``.
        """
        auth_state = await user.get_auth_state()
        if not auth_state or not auth_state.get("token_response"):
            return False
        try:
            await self.discover()
            token_info: dict[str, Any] | None = auth_state["token_response"]
            refreshed = False
            if time.time() + self.token_refresh_margin >= auth_state.get("expires_at", 0):
                token_info, refreshed = await self._refresh_tokens(user, auth_state), True
                if token_info is None:
                    return False
            try:
                user_info = await self.token_to_user(token_info)
            except HTTPClientError as exc:
                if refreshed or not 400 <= exc.code < 500:
                    raise
                token_info = await self._refresh_tokens(user, auth_state)  # revoked access token?
                if token_info is None:
                    return False
                user_info = await self.token_to_user(token_info)
        except (HTTPClientError, OSError) as exc:
            code = getattr(exc, "code", None)
            if code is not None and 400 <= code < 500:
                self.log.info("Keycloak no longer accepts the tokens of %s (HTTP %s): login required",
                              user.name, code)
                return False
            self.log.warning("Keycloak unreachable while refreshing %s (%s): keeping her login", user.name, exc)
            return await self._refresh_without_keycloak(user, auth_state)
        except web.HTTPError as exc:
            if exc.status_code == 503:
                self.log.warning("Keycloak unreachable while refreshing %s: keeping her login", user.name)
                return await self._refresh_without_keycloak(user, auth_state)
            raise
        username = self.normalize_username(self.user_info_to_username(user_info))
        if username != user.name:
            self.log.warning("Keycloak now calls %s %s: login required", user.name, username)
            return False
        token_state = self.build_auth_state_dict(token_info, user_info)
        return await self.refresh_from_user_office(
            user, extra_state=token_state, extra_roles=self.site_roles(token_state), username=user.name,
            **self._identity(token_state),
        )
