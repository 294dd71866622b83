"""Keystone v3: password and application-credential tokens with a service catalog."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from .base import AUTH_REQUIRED, ApiError, SimHandler, VersionHandler
from .state import Project, Token, User, isotime, utcnow

V3_UPDATED = "2024-04-03T00:00:00Z"


def _v3(sim: Any) -> dict[str, Any]:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": V3_UPDATED,
        "links": [{"rel": "self", "href": f"{sim.url}/identity/v3/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    }


def versions_document(sim: Any) -> dict[str, Any]:
    return {"versions": {"values": [_v3(sim)]}}


def version_document(sim: Any) -> dict[str, Any]:
    return {"version": _v3(sim)}


def unauthorized() -> ApiError:
    return ApiError(401, AUTH_REQUIRED)


class TokensHandler(SimHandler):
    """``/identity/v3/auth/tokens``: issue (POST), validate (GET, HEAD) and revoke (DELETE)."""

    style = "keystone"
    requires_auth = False

    def post(self) -> None:
        body = self.json_body("auth")
        identity = body.get("identity")
        if not isinstance(identity, dict) or not identity.get("methods"):
            raise ApiError(400, "Expecting to find identity in auth. The server could not comply with the "
                                "request since it is either malformed or otherwise incorrect.")
        methods = list(identity["methods"])
        app_credential = None
        if methods == ["password"]:
            user = self._password_user(identity.get("password", {}))
            project = self._scope(user, body.get("scope"))
        elif methods == ["application_credential"]:
            app_credential = self._app_credential(identity.get("application_credential", {}))
            if body.get("scope"):
                raise ApiError(401, "Application credentials cannot request a scope.")
            user = self.sim.state.users[app_credential.user_id]
            project = self.sim.state.projects[app_credential.project_id]
        else:
            raise ApiError(401, f"Attempted to authenticate with an unsupported method: {methods}.")
        now = utcnow()
        token = Token(
            id="gAAAAA" + secrets.token_urlsafe(140),
            user=user,
            project=project,
            methods=methods,
            issued_at=now,
            expires_at=now + dt.timedelta(seconds=self.sim.token_lifetime),
            app_credential=app_credential,
        )
        self.sim.state.tokens[token.id] = token
        self.set_header("X-Subject-Token", token.id)
        self.send_json(self._token_body(token), 201)

    def get(self) -> None:
        self._check_token()
        token = self.sim.valid_token(self.request.headers.get("X-Subject-Token", ""))
        if token is None:
            raise ApiError(404, f"Could not find token: {self.request.headers.get('X-Subject-Token', '')}.")
        self.set_header("X-Subject-Token", token.id)
        self.send_json(self._token_body(token))

    def delete(self) -> None:
        self._check_token()
        if self.sim.state.tokens.pop(self.request.headers.get("X-Subject-Token", ""), None) is None:
            raise ApiError(404, "Could not find token.")
        self.no_content()

    # ---------------------------------------------------------------- methods

    def _password_user(self, password: dict[str, Any]) -> User:
        ref = password.get("user")
        if not isinstance(ref, dict):
            raise ApiError(400, "Expecting to find user in password.")
        user = self.sim.state.find_user(ref)
        if user is None or not secrets.compare_digest(str(ref.get("password", "")), user.password):
            raise unauthorized()
        return user

    def _app_credential(self, ref: dict[str, Any]) -> Any:
        state = self.sim.state
        secret = str(ref.get("secret", ""))
        if "id" in ref:
            credential = state.app_credentials.get(ref["id"])
        else:
            user = state.find_user(ref.get("user") or {})
            credential = next(
                (c for c in state.app_credentials.values()
                 if user is not None and c.user_id == user.id and c.name == ref.get("name")),
                None,
            )
        if credential is None or not secrets.compare_digest(secret, credential.secret):
            raise unauthorized()
        return credential

    def _scope(self, user: User, scope: Any) -> Project:
        state = self.sim.state
        if not scope:
            project = state.projects.get(user.default_project_id)
        elif isinstance(scope, dict) and isinstance(scope.get("project"), dict):
            project = state.find_project(scope["project"])
        else:
            raise ApiError(401, "Only project scope is supported by the simulator.")
        if project is None or (user.id, project.id) not in state.memberships:
            raise unauthorized()
        return project

    def _token_body(self, token: Token) -> dict[str, Any]:
        domain = {"id": token.user.domain_id, "name": "Default" if token.user.domain_id == "default"
                  else token.user.domain_id}
        body: dict[str, Any] = {
            "methods": token.methods,
            "user": {"domain": domain, "id": token.user.id, "name": token.user.name,
                     "password_expires_at": None},
            "audit_ids": [token.audit_id],
            "expires_at": isotime(token.expires_at, micro=True),
            "issued_at": isotime(token.issued_at, micro=True),
            "project": {"domain": {"id": token.project.domain_id, "name": "Default"},
                        "id": token.project.id, "name": token.project.name},
            "is_domain": False,
            "roles": [{"id": self.sim.member_role_id, "name": "member"},
                      {"id": self.sim.reader_role_id, "name": "reader"}],
            "catalog": self.sim.catalog(token.project.id),
        }
        if token.app_credential is not None:
            body["application_credential"] = {"id": token.app_credential.id,
                                              "name": token.app_credential.name, "restricted": True}
        return {"token": body}


class AuthProjectsHandler(SimHandler):
    """``GET /identity/v3/auth/projects``: the projects the token's user may scope to."""

    style = "keystone"

    def get(self) -> None:
        state = self.sim.state
        projects = [state.projects[p] for (u, p) in sorted(state.memberships) if u == self.token.user.id]
        self.send_json({
            "projects": [{"id": p.id, "name": p.name, "domain_id": p.domain_id, "enabled": True,
                          "is_domain": False, "parent_id": p.domain_id, "description": "",
                          "links": {"self": f"{self.sim.url}/identity/v3/projects/{p.id}"}}
                         for p in projects],
            "links": {"self": f"{self.sim.url}/identity/v3/auth/projects", "previous": None, "next": None},
        })


class AuthCatalogHandler(SimHandler):
    """``GET /identity/v3/auth/catalog``."""

    style = "keystone"

    def get(self) -> None:
        self.send_json({"catalog": self.sim.catalog(self.project_id),
                        "links": {"self": f"{self.sim.url}/identity/v3/auth/catalog"}})


def routes() -> list[tuple[str, type[SimHandler], dict[str, Any]]]:
    return [
        ("/identity", VersionHandler, {"document": versions_document, "status": 300}),
        ("/identity/v3", VersionHandler, {"document": version_document}),
        ("/identity/v3/auth/tokens", TokensHandler, {}),
        ("/identity/v3/auth/projects", AuthProjectsHandler, {}),
        ("/identity/v3/auth/catalog", AuthCatalogHandler, {}),
    ]
