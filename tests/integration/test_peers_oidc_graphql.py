"""The real test peers themselves: the Keycloak-like realm and the User Office GraphQL server.

These prove the peers behave like the services they stand in for, so that tests of visa-hub
against them mean something. Needs ``npm ci --prefix tests/peers/keycloak`` and ``graphql-core``.
"""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from oauthenticator.generic import GenericOAuthenticator

from peers import PeerError, oidc_realm
from peers.oidc_realm import (
    DEFAULT_USERS,
    LoginFailed,
    OIDCTestClient,
    decode_jwt_unverified,
    keycloak_realm,
)
from peers.useroffice_graphql import VISA_HUB_PERMISSIONS, load_sample_data, user_office

pytestmark = pytest.mark.integration

ACCESS_TOKEN_TTL = 3  # seconds: short enough to wait out in the refresh test
REDIRECT_URI = "http://127.0.0.1:8000/hub/oauth_callback"  # any port matches (loopback, RFC 8252)
ALICE = next(user for user in DEFAULT_USERS if user.username == "alice")
CAROL = next(user for user in DEFAULT_USERS if user.username == "carol")


@pytest.fixture(scope="module")
def realm():
    with keycloak_realm(access_token_ttl=ACCESS_TOKEN_TTL) as realm:
        yield realm


@pytest.fixture
def oidc(realm):
    with OIDCTestClient(realm, redirect_uri=REDIRECT_URI) as client:
        yield client


@pytest.fixture(scope="module")
def useroffice_peer():
    with user_office(
        api_tokens=[
            {"token": "limited-token", "permissions": ["UserQueries.getBasicUserDetailsByEmail"]},
        ]
    ) as peer:
        yield peer


@pytest.fixture
def uo(useroffice_peer):
    yield useroffice_peer
    useroffice_peer.clear_faults()
    useroffice_peer.replace_data(load_sample_data())
    useroffice_peer.clear_requests()


# ---------------------------------------------------------------------------------------------
# Keycloak realm
# ---------------------------------------------------------------------------------------------
def test_discovery_document_is_laid_out_like_keycloak(realm):
    doc = httpx.get(realm.discovery_url).json()
    base = f"{realm.url}/realms/ess"
    assert doc["issuer"] == realm.issuer == base
    assert doc["authorization_endpoint"] == f"{base}/protocol/openid-connect/auth"
    assert doc["token_endpoint"] == f"{base}/protocol/openid-connect/token"
    assert doc["userinfo_endpoint"] == f"{base}/protocol/openid-connect/userinfo"
    assert doc["jwks_uri"] == f"{base}/protocol/openid-connect/certs"
    assert doc["end_session_endpoint"] == f"{base}/protocol/openid-connect/logout"
    assert doc["revocation_endpoint"] == f"{base}/protocol/openid-connect/revoke"
    assert doc["introspection_endpoint"] == f"{base}/protocol/openid-connect/token/introspect"
    assert "S256" in doc["code_challenge_methods_supported"]
    keys = httpx.get(doc["jwks_uri"]).json()["keys"]
    assert [key["alg"] for key in keys] == ["RS256"]


def test_code_flow_with_pkce_gives_keycloak_shaped_tokens(realm, oidc):
    result = oidc.authorize("carol", "carol-password")
    assert result.iss == realm.issuer
    tokens = oidc.exchange(result)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == ACCESS_TOKEN_TTL
    assert tokens["refresh_token"]

    # The ID token verifies against the realm's published keys.
    signing_key = jwt.PyJWKClient(realm.jwks_url).get_signing_key_from_jwt(tokens["id_token"])
    id_token = jwt.decode(
        tokens["id_token"], signing_key.key, algorithms=["RS256"], audience=realm.client_id, issuer=realm.issuer
    )
    assert id_token["nonce"] == result.nonce
    expected = {
        "sub": CAROL.sub,
        "preferred_username": "carol",
        "email": "carol.white@ess.eu",
        "email_verified": True,
        "name": "Carol White",
        "given_name": "Carol",
        "family_name": "White",
        "realm_access": {"roles": ["offline_access", "default-roles-ess", "staff"]},
        "resource_access": {"visa-hub": {"roles": ["support"]}},
    }
    assert {name: id_token.get(name) for name in expected} == expected

    # Keycloak access tokens are JWTs with the same claims.
    access_token = decode_jwt_unverified(tokens["access_token"])
    assert {name: access_token.get(name) for name in expected} == expected
    assert access_token["azp"] == realm.client_id
    assert access_token["typ"] == "Bearer"
    assert access_token["iss"] == realm.issuer

    userinfo = oidc.userinfo(tokens["access_token"])
    assert userinfo.status_code == 200
    assert userinfo.json() == expected


def test_wrong_password_shows_the_login_form_again(oidc):
    with pytest.raises(LoginFailed, match="refused the login"):
        oidc.authorize("alice", "not-her-password")


def test_pkce_verifier_must_match(oidc):
    result = oidc.authorize("alice", "alice-password")
    result.code_verifier = "x" * 64
    response = oidc.token_request(
        {
            "grant_type": "authorization_code",
            "code": result.code,
            "redirect_uri": result.redirect_uri,
            "code_verifier": result.code_verifier,
        }
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_refresh_after_the_access_token_expired(oidc):
    tokens = oidc.login("alice", "alice-password")
    assert tokens["refresh_expires_in"] > ACCESS_TOKEN_TTL
    time.sleep(ACCESS_TOKEN_TTL + 0.5)
    assert oidc.userinfo(tokens["access_token"]).status_code == 401

    refreshed = oidc.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    new_tokens = refreshed.json()
    assert new_tokens["access_token"] != tokens["access_token"]
    assert decode_jwt_unverified(new_tokens["id_token"])["sub"] == ALICE.sub
    assert oidc.userinfo(new_tokens["access_token"]).json()["preferred_username"] == "alice"


def test_revoked_refresh_token_no_longer_works(oidc):
    tokens = oidc.login("alice", "alice-password")
    assert oidc.introspect(tokens["access_token"])["active"] is True
    assert oidc.introspect(tokens["refresh_token"])["active"] is True
    assert oidc.revoke(tokens["refresh_token"]).status_code == 200
    assert oidc.introspect(tokens["refresh_token"]) == {"active": False}
    assert oidc.introspect(tokens["access_token"]) == {"active": False}
    refreshed = oidc.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    assert oidc.userinfo(tokens["access_token"]).status_code == 401


def test_logout_ends_the_realm_session(oidc):
    tokens = oidc.login("alice", "alice-password")
    # While the session lives, a new authorization request needs no password (single sign-on).
    assert oidc.authorize("alice", "wrong-password-never-asked").code

    done = "http://127.0.0.1:8000/hub/logout-done"
    response = oidc.logout(tokens["id_token"], post_logout_redirect_uri=done)
    assert response.status_code in (302, 303)
    assert response.headers["location"] == done

    assert oidc.refresh(tokens["refresh_token"]).status_code == 400
    with pytest.raises(LoginFailed, match="refused the login"):
        oidc.authorize("alice", "wrong-password-now-asked")
    assert oidc.authorize("alice", "alice-password").code


def test_admin_sign_out_revokes_refresh_tokens_and_sessions(realm, oidc):
    tokens = oidc.login("bob", "bob-password")
    signed_out = realm.sign_out_everywhere("bob")
    assert signed_out["grants"] == 1 and signed_out["sessions"] >= 1
    assert oidc.refresh(tokens["refresh_token"]).status_code == 400
    assert oidc.userinfo(tokens["access_token"]).status_code == 401
    with pytest.raises(LoginFailed, match="refused the login"):
        oidc.authorize("bob", "wrong-password-now-asked")


async def test_generic_oauthenticator_works_from_the_discovery_document(realm, oidc):
    doc = httpx.get(realm.discovery_url).json()
    authenticator = GenericOAuthenticator(
        client_id=realm.client_id,
        client_secret=realm.client_secret,
        oauth_callback_url=REDIRECT_URI,
        authorize_url=doc["authorization_endpoint"],
        token_url=doc["token_endpoint"],
        userdata_url=doc["userinfo_endpoint"],
        logout_redirect_url=doc["end_session_endpoint"],
        scope=["openid", "profile", "email"],
        username_claim="preferred_username",
        manage_groups=True,
        auth_state_groups_key="oauth_user.realm_access.roles",
    )
    assert authenticator.authorize_url.startswith(realm.issuer)
    assert authenticator.enable_pkce

    # The authenticator's own token request and userinfo call work against the realm.
    result = oidc.authorize("carol", "carol-password")
    params = {
        "code": result.code,
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT_URI,
        "code_verifier": result.code_verifier,
        "client_id": realm.client_id,
        "client_secret": realm.client_secret,
    }
    token_info = await authenticator.get_token_info(None, params)
    user_info = await authenticator.token_to_user(token_info)
    assert authenticator.user_info_to_username(user_info) == "carol"
    auth_state = authenticator.build_auth_state_dict(token_info, user_info)
    assert set(await authenticator.get_user_groups(auth_state)) >= {"staff"}

    refresh_params = authenticator.build_refresh_token_request_params(token_info["refresh_token"])
    refreshed = await authenticator.get_token_info(None, refresh_params)
    assert refreshed["access_token"] != token_info["access_token"]


# ---------------------------------------------------------------------------------------------
# User Office
# ---------------------------------------------------------------------------------------------
USER_BY_OIDC_SUB = """
query UserByOidcSub($sub: String!, $endsAfter: DateTime) {
  userByOIDCSub(oidcSub: $sub) {
    id firstname lastname email oidcSub institutionId
    roles { shortCode }
    proposals {
      primaryKey proposalId title
      status { shortCode }
      call { shortCode }
      instruments { id name shortCode }
      proposer { id firstname lastname email oidc_sub }
      users { id firstname lastname email oidc_sub }
    }
    experiments(filter: { endsAfter: $endsAfter }) {
      experimentPk experimentId startsAt endsAt status proposalPk
      localContact { id firstname lastname email }
      instrument { id name shortCode }
    }
  }
}
"""

BASIC_BY_EMAIL = """
query BasicByEmail($email: String!, $role: UserRole) {
  basicUserDetailsByEmail(email: $email, role: $role) { id firstname lastname email institution oidc_sub }
}
"""


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def test_every_realm_user_is_known_to_the_user_office(uo):
    for user in DEFAULT_USERS:
        found = uo.query(USER_BY_OIDC_SUB, {"sub": user.sub})["userByOIDCSub"]
        assert found is not None, user.username
        assert found["email"] == user.email


def test_user_by_oidc_sub_returns_proposals_and_experiments(uo):
    alice = uo.query(USER_BY_OIDC_SUB, {"sub": ALICE.sub})["userByOIDCSub"]
    assert alice["firstname"] == "Alice"
    assert [role["shortCode"] for role in alice["roles"]] == ["user"]

    proposals = {p["proposalId"]: p for p in alice["proposals"]}
    assert set(proposals) == {"587412", "587533"}  # principal investigator of one, co-proposer of the other
    mine = proposals["587412"]
    assert mine["proposer"]["oidc_sub"] == ALICE.sub
    assert [u["firstname"] for u in mine["users"]] == ["Bob"]
    assert mine["instruments"] == [{"id": 1, "name": "LoKI", "shortCode": "LOKI"}]
    assert mine["status"] == {"shortCode": "SCHEDULING"}
    assert mine["call"] == {"shortCode": "2025-H2"}

    experiments = {e["experimentId"]: e for e in alice["experiments"]}
    assert set(experiments) == {"587412-1", "587412-2", "587533-1"}
    running = experiments["587412-1"]
    assert running["experimentPk"] == 1001 and isinstance(running["experimentPk"], int)
    assert running["status"] == "ACTIVE"
    assert running["startsAt"] < _iso_now() < running["endsAt"]
    assert running["startsAt"].endswith("Z")
    assert running["localContact"] == {
        "id": 3,
        "firstname": "Carol",
        "lastname": "White",
        "email": "carol.white@ess.eu",
    }
    assert running["instrument"]["shortCode"] == "LOKI"
    assert experiments["587533-1"]["localContact"] is None

    current = uo.query(USER_BY_OIDC_SUB, {"sub": ALICE.sub, "endsAfter": _iso_now()})["userByOIDCSub"]
    assert {e["experimentId"] for e in current["experiments"]} == {"587412-1", "587533-1"}


def test_unknown_sub_is_null(uo):
    assert uo.query(USER_BY_OIDC_SUB, {"sub": "00000000-0000-0000-0000-000000000000"}) == {"userByOIDCSub": None}


def test_basic_user_details_by_email(uo):
    erin = uo.query(BASIC_BY_EMAIL, {"email": "Erin.Novak@example.org"})["basicUserDetailsByEmail"]
    assert erin == {
        "id": 5,
        "firstname": "Erin",
        "lastname": "Novak",
        "email": "erin.novak@example.org",
        "institution": "Lund University",
        "oidc_sub": None,
    }
    carol = uo.query(BASIC_BY_EMAIL, {"email": CAROL.email, "role": "INSTRUMENT_SCIENTIST"})["basicUserDetailsByEmail"]
    assert carol["oidc_sub"] == CAROL.sub
    assert uo.query(BASIC_BY_EMAIL, {"email": CAROL.email, "role": "USER_OFFICER"}) == {"basicUserDetailsByEmail": None}


def test_tokens_are_checked_like_user_office_core(uo):
    variables = {"sub": ALICE.sub}
    refused = uo.post(USER_BY_OIDC_SUB, variables, token="not-a-token")
    assert refused.status_code == 401

    anonymous = uo.post(USER_BY_OIDC_SUB, variables, auth=False)
    assert anonymous.status_code == 200
    assert anonymous.json()["data"] == {"userByOIDCSub": None}

    limited = uo.post(USER_BY_OIDC_SUB, variables, token="limited-token")
    assert limited.json()["data"] == {"userByOIDCSub": None}
    by_email = uo.post(BASIC_BY_EMAIL, {"email": ALICE.email}, token="limited-token")
    assert by_email.json()["data"]["basicUserDetailsByEmail"]["oidc_sub"] == ALICE.sub


def test_a_token_with_visa_hub_permissions_is_enough(uo):
    with user_office(api_tokens=[{"token": "visa-hub", "permissions": list(VISA_HUB_PERMISSIONS)}]) as peer:
        response = peer.post(USER_BY_OIDC_SUB, {"sub": ALICE.sub}, token="visa-hub")
        body = response.json()
        assert "errors" not in body
        assert len(body["data"]["userByOIDCSub"]["experiments"]) == 3


def test_removing_a_member_shows_in_the_next_query(uo):
    bob_sub = next(user.sub for user in DEFAULT_USERS if user.username == "bob")
    bob = uo.query(USER_BY_OIDC_SUB, {"sub": bob_sub})["userByOIDCSub"]
    assert {p["proposalId"] for p in bob["proposals"]} == {"587412", "587533"}

    uo.remove_member(101, bob["id"])

    bob = uo.query(USER_BY_OIDC_SUB, {"sub": bob_sub})["userByOIDCSub"]
    assert {p["proposalId"] for p in bob["proposals"]} == {"587533"}
    assert {e["experimentId"] for e in bob["experiments"]} == {"587533-1"}
    assert [r["body"]["variables"]["sub"] for r in uo.requests()] == [bob_sub, bob_sub]


def test_patching_data_moves_an_experiment(uo):
    uo.patch(
        upsert={"experiments": [{"experimentPk": 1003, "startsAt": "now-1h", "endsAt": "now+1h"}]},
        delete={"experiments": [1002]},
    )
    alice = uo.query(USER_BY_OIDC_SUB, {"sub": ALICE.sub, "endsAfter": _iso_now()})["userByOIDCSub"]
    experiments = {e["experimentId"]: e for e in alice["experiments"]}
    assert set(experiments) == {"587412-1", "587533-1"}
    assert experiments["587533-1"]["startsAt"] < _iso_now() < experiments["587533-1"]["endsAt"]


def test_outage_and_slowness_hooks(uo):
    uo.set_faults(status=503)
    assert uo.post(USER_BY_OIDC_SUB, {"sub": ALICE.sub}).status_code == 503
    assert uo.post(USER_BY_OIDC_SUB, {"sub": ALICE.sub}).status_code == 503
    uo.clear_faults()
    assert uo.post(USER_BY_OIDC_SUB, {"sub": ALICE.sub}).status_code == 200

    uo.set_faults(delay=1.0, times=1)
    with pytest.raises(httpx.ReadTimeout):
        uo.post(USER_BY_OIDC_SUB, {"sub": ALICE.sub}, timeout=0.2)
    assert uo.post(USER_BY_OIDC_SUB, {"sub": ALICE.sub}).status_code == 200


# ---------------------------------------------------------------------------------------------
# Failing to start says why
# ---------------------------------------------------------------------------------------------
def test_missing_npm_packages_name_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(oidc_realm, "KEYCLOAK_DIR", tmp_path)
    with pytest.raises(PeerError, match="npm ci --prefix tests/peers/keycloak"), keycloak_realm():
        pass


def test_a_peer_that_dies_on_start_shows_its_stderr():
    with pytest.raises(PeerError, match=r"(?s)exited with status.*record without 'id'"), user_office({"users": [{}]}):
        pass
