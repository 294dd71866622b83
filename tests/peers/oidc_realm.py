"""A Keycloak-like OIDC realm for tests, and an httpx client that logs people in through it.

The realm is ``tests/peers/keycloak/server.mjs`` (npm ``oidc-provider``), run with Node::

    with keycloak_realm(access_token_ttl=5) as realm:
        oidc = OIDCTestClient(realm)
        tokens = oidc.login("alice", "alice-password")
        oidc.userinfo(tokens["access_token"])

Its npm packages must be installed once: ``npm ci --prefix tests/peers/keycloak``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

from . import PEERS_DIR, PeerError, PeerProcess, run_peer

KEYCLOAK_DIR = PEERS_DIR / "keycloak"
INSTALL_COMMAND = "npm ci --prefix tests/peers/keycloak"

DEFAULT_REALM = "ess"
DEFAULT_CLIENT_ID = "visa-hub"
# Loopback redirect URIs registered without a port match any port (RFC 8252, as Keycloak does),
# so a hub started on any free port can use the realm.
DEFAULT_REDIRECT_URIS = ("http://127.0.0.1/*", "http://localhost/*")
DEFAULT_POST_LOGOUT_REDIRECT_URIS = ("http://127.0.0.1/*", "http://localhost/*")


@dataclass(frozen=True)
class KeycloakUser:
    """A person in the realm. ``client_roles`` maps a client id to that client's roles."""

    username: str
    password: str
    sub: str
    email: str
    first_name: str = ""
    last_name: str = ""
    email_verified: bool = True
    realm_roles: tuple[str, ...] = ()
    client_roles: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def to_config(self) -> dict:
        config = asdict(self)
        config["realm_roles"] = list(self.realm_roles)
        config["client_roles"] = {client: list(roles) for client, roles in self.client_roles.items()}
        return config


# The same people (by ``sub``) appear in the User Office sample data (useroffice/sample-data.yaml).
DEFAULT_USERS: tuple[KeycloakUser, ...] = (
    KeycloakUser(
        username="alice",
        password="alice-password",
        sub="5f0c3c8e-6a4b-4f3e-9d1a-2b7c1e0a9f11",
        email="alice.smith@example.org",
        first_name="Alice",
        last_name="Smith",
        realm_roles=("offline_access", "default-roles-ess"),
    ),
    KeycloakUser(
        username="bob",
        password="bob-password",
        sub="8d2e4f6a-1b3c-4d5e-8f7a-9b0c1d2e3f22",
        email="bob.jones@example.org",
        first_name="Bob",
        last_name="Jones",
        realm_roles=("offline_access", "default-roles-ess"),
    ),
    KeycloakUser(
        username="carol",
        password="carol-password",
        sub="2a4b6c8d-0e1f-4a3b-8c5d-7e9f0a1b2c33",
        email="carol.white@ess.eu",
        first_name="Carol",
        last_name="White",
        realm_roles=("offline_access", "default-roles-ess", "staff"),
        client_roles={DEFAULT_CLIENT_ID: ("support",)},
    ),
    KeycloakUser(
        username="dave",
        password="dave-password",
        sub="9e8d7c6b-5a4f-4e3d-9c2b-1a0f9e8d7c44",
        email="dave.admin@ess.eu",
        first_name="Dave",
        last_name="Admin",
        realm_roles=("offline_access", "default-roles-ess", "staff"),
        client_roles={DEFAULT_CLIENT_ID: ("admin",)},
    ),
)


@dataclass
class KeycloakRealm:
    """A running realm: where it is and the client registered in it."""

    issuer: str
    url: str  # the server's origin, http://127.0.0.1:<port>
    realm: str
    client_id: str
    client_secret: str
    users: tuple[KeycloakUser, ...]
    process: PeerProcess

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def endpoint(self, name: str) -> str:
        """``auth``, ``token``, ``userinfo``, ``certs``, ``logout``, ``revoke`` or ``token/introspect``."""
        return f"{self.issuer}/protocol/openid-connect/{name}"

    @property
    def authorize_url(self) -> str:
        return self.endpoint("auth")

    @property
    def token_url(self) -> str:
        return self.endpoint("token")

    @property
    def userinfo_url(self) -> str:
        return self.endpoint("userinfo")

    @property
    def logout_url(self) -> str:
        return self.endpoint("logout")

    @property
    def revocation_url(self) -> str:
        return self.endpoint("revoke")

    @property
    def jwks_url(self) -> str:
        return self.endpoint("certs")

    def sign_out_everywhere(self, username: str) -> dict:
        """End all of a user's sessions and revoke her refresh tokens, as a Keycloak admin can."""
        response = httpx.post(f"{self.url}/_test/realms/{self.realm}/users/{username}/logout", timeout=10)
        if response.status_code != 200:
            raise PeerError(f"signing {username!r} out failed: {response.status_code} {response.text}")
        return response.json()

    def user(self, username: str) -> KeycloakUser:
        for user in self.users:
            if user.username == username:
                return user
        raise KeyError(f"no user {username!r} in realm {self.realm!r}")


def _check_installed() -> None:
    if shutil.which("node") is None:
        raise PeerError("the Keycloak test peer needs Node.js (`node`) on PATH (Node 20 or later)")
    if not (KEYCLOAK_DIR / "node_modules" / "oidc-provider").is_dir():
        raise PeerError(
            f"the Keycloak test peer's npm packages are not installed; run `{INSTALL_COMMAND}` in the repository root"
        )


@contextlib.contextmanager
def keycloak_realm(
    *,
    realm: str = DEFAULT_REALM,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str | None = None,
    redirect_uris: Sequence[str] = DEFAULT_REDIRECT_URIS,
    post_logout_redirect_uris: Sequence[str] = DEFAULT_POST_LOGOUT_REDIRECT_URIS,
    users: Sequence[KeycloakUser] = DEFAULT_USERS,
    access_token_ttl: int = 300,
    id_token_ttl: int | None = None,
    refresh_token_ttl: int = 1800,
    session_ttl: int = 36000,
    port: int = 0,
    timeout: float = 30.0,
) -> Iterator[KeycloakRealm]:
    """Run a Keycloak-like realm on loopback for the duration of the ``with`` block."""
    _check_installed()
    client_secret = client_secret or secrets.token_urlsafe(24)
    config = {
        "port": port,
        "host": "127.0.0.1",
        "realm": realm,
        "ttl": {
            "accessToken": access_token_ttl,
            "idToken": id_token_ttl or access_token_ttl,
            "refreshToken": refresh_token_ttl,
            "session": session_ttl,
        },
        "clients": [
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uris": list(redirect_uris),
                "post_logout_redirect_uris": list(post_logout_redirect_uris),
            }
        ],
        "users": [user.to_config() for user in users],
    }
    with tempfile.TemporaryDirectory(prefix="visa-hub-keycloak-") as tmp:
        config_path = Path(tmp) / "realm.json"
        config_path.write_text(json.dumps(config, indent=2))
        argv = ["node", str(KEYCLOAK_DIR / "server.mjs"), str(config_path)]
        with run_peer("keycloak", argv, cwd=KEYCLOAK_DIR, timeout=timeout) as process:
            issuer = process.ready["issuer"]
            yield KeycloakRealm(
                issuer=issuer,
                url=f"http://127.0.0.1:{process.ready['port']}",
                realm=realm,
                client_id=client_id,
                client_secret=client_secret,
                users=tuple(users),
                process=process,
            )


# ---------------------------------------------------------------------------------------------
# Driving the realm without a browser
# ---------------------------------------------------------------------------------------------
@dataclass
class HTMLForm:
    id: str | None
    action: str
    method: str
    fields: dict[str, str]


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[HTMLForm] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(
                HTMLForm(
                    id=attributes.get("id"),
                    action=attributes.get("action", ""),
                    method=attributes.get("method", "get").lower(),
                    fields={},
                )
            )
        elif (
            tag == "input"
            and self.forms
            and attributes.get("name")
            and attributes.get("type", "text") in {"hidden", "text", "password", "email"}
        ):
            self.forms[-1].fields[attributes["name"]] = attributes.get("value", "")


def parse_forms(html: str) -> list[HTMLForm]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


class LoginFailed(AssertionError):
    """The login flow did not end where it should have."""


def _is_login_page(response: httpx.Response) -> bool:
    return response.status_code == 200 and 'id="kc-form-login"' in response.text


def _auto_submit_form(response: httpx.Response) -> HTMLForm | None:
    """A page whose only job is to post a form (logout confirmation, form_post response mode)."""
    if response.status_code != 200 or "text/html" not in response.headers.get("content-type", ""):
        return None
    forms = [form for form in parse_forms(response.text) if form.method == "post"]
    if len(forms) == 1 and forms[0].id != "kc-form-login" and ".submit()" in response.text:
        return forms[0]
    return None


def follow_login(
    http: httpx.Client,
    url: str,
    username: str,
    password: str,
    *,
    stop_at: str | None = None,
    max_steps: int = 20,
) -> httpx.Response:
    """Follow redirects from ``url`` like a browser, signing in on the realm's login page.

    Stops at the first redirect to a URL starting with ``stop_at`` (returned unfollowed, so the
    caller can read the authorization code), or at the first page that is neither a redirect nor
    the login form. Works from a hub's ``/hub/oauth_login`` as well as from an authorization URL.
    """
    response = http.get(url)
    submitted = False
    for _ in range(max_steps):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if stop_at is not None and location.startswith(stop_at):
                return response
            response = http.get(location)
        elif _is_login_page(response):
            if submitted:
                raise LoginFailed(f"the realm refused the login of {username!r} (login form shown again)")
            form = next(form for form in parse_forms(response.text) if form.id == "kc-form-login")
            data = {**form.fields, "username": username, "password": password}
            response = http.post(urljoin(str(response.url), form.action), data=data)
            submitted = True
        elif (form := _auto_submit_form(response)) is not None:
            response = http.post(urljoin(str(response.url), form.action), data=form.fields)
        else:
            return response
    raise LoginFailed(f"login flow from {url} did not finish within {max_steps} steps")


def pkce_pair() -> tuple[str, str]:
    """A PKCE (code_verifier, S256 code_challenge) pair."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def decode_jwt_unverified(token: str) -> dict:
    """The payload of a JWT, without verifying it (tests look at claims; the RP verifies)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@dataclass
class AuthorizationResult:
    code: str
    state: str
    code_verifier: str
    nonce: str
    redirect_uri: str
    iss: str | None


class OIDCTestClient:
    """The realm's confidential client, driven with httpx: a relying party for tests.

    One instance is one browser: it keeps the realm's session cookie between logins.
    """

    def __init__(
        self,
        realm: KeycloakRealm,
        *,
        redirect_uri: str = "http://127.0.0.1:8000/hub/oauth_callback",
        scope: str = "openid profile email",
        http: httpx.Client | None = None,
    ) -> None:
        self.realm = realm
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.http = http or httpx.Client(timeout=10)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> OIDCTestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def authorization_url(self, *, state: str, nonce: str, code_challenge: str, **extra: str) -> str:
        params = {
            "client_id": self.realm.client_id,
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return f"{self.realm.authorize_url}?{urlencode(params)}"

    def authorize(self, username: str, password: str, **extra: str) -> AuthorizationResult:
        """Run the authorization request (code + PKCE S256), signing in if the realm asks."""
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        verifier, challenge = pkce_pair()
        url = self.authorization_url(state=state, nonce=nonce, code_challenge=challenge, **extra)
        response = follow_login(self.http, url, username, password, stop_at=self.redirect_uri)
        if not response.is_redirect:
            raise LoginFailed(f"no redirect back to {self.redirect_uri}; got HTTP {response.status_code}")
        query = parse_qs(urlsplit(response.headers["location"]).query)
        if "error" in query:
            raise LoginFailed(f"authorization failed: {query['error'][0]}: {query.get('error_description', [''])[0]}")
        if query.get("state") != [state]:
            raise LoginFailed("the state parameter came back changed")
        return AuthorizationResult(
            code=query["code"][0],
            state=state,
            code_verifier=verifier,
            nonce=nonce,
            redirect_uri=self.redirect_uri,
            iss=query.get("iss", [None])[0],
        )

    def token_request(self, data: dict[str, str]) -> httpx.Response:
        """POST to the token endpoint as the client (credentials in the body, as oauthenticator sends them)."""
        return self.http.post(
            self.realm.token_url,
            data={**data, "client_id": self.realm.client_id, "client_secret": self.realm.client_secret},
        )

    def exchange(self, result: AuthorizationResult) -> dict:
        response = self.token_request(
            {
                "grant_type": "authorization_code",
                "code": result.code,
                "redirect_uri": result.redirect_uri,
                "code_verifier": result.code_verifier,
            }
        )
        response.raise_for_status()
        return response.json()

    def login(self, username: str, password: str) -> dict:
        """Sign in and exchange the code: the token response (access, ID and refresh tokens)."""
        return self.exchange(self.authorize(username, password))

    def refresh(self, refresh_token: str) -> httpx.Response:
        """The raw token response (tests check failures too)."""
        return self.token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def revoke(self, token: str, token_type_hint: str = "refresh_token") -> httpx.Response:
        return self.http.post(
            self.realm.revocation_url,
            data={"token": token, "token_type_hint": token_type_hint},
            auth=(self.realm.client_id, self.realm.client_secret),
        )

    def introspect(self, token: str) -> dict:
        response = self.http.post(
            self.realm.endpoint("token/introspect"),
            data={"token": token},
            auth=(self.realm.client_id, self.realm.client_secret),
        )
        response.raise_for_status()
        return response.json()

    def userinfo(self, access_token: str) -> httpx.Response:
        return self.http.get(self.realm.userinfo_url, headers={"Authorization": f"Bearer {access_token}"})

    def logout(self, id_token: str, post_logout_redirect_uri: str | None = None) -> httpx.Response:
        """RP-initiated logout; returns the redirect to ``post_logout_redirect_uri`` (unfollowed)."""
        post_logout_redirect_uri = post_logout_redirect_uri or urljoin(self.redirect_uri, "/hub/logout-done")
        params = {"id_token_hint": id_token, "post_logout_redirect_uri": post_logout_redirect_uri}
        response = self.http.get(f"{self.realm.logout_url}?{urlencode(params)}")
        form = _auto_submit_form(response)
        if form is not None:  # the confirmation a browser submits by itself
            response = self.http.post(urljoin(str(response.url), form.action), data=form.fields)
        return response
