"""In a real browser: Keycloak's login page, the User Office's experiments, refusal, staff, logout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import missing_peer

from hubtest import HubProcess
from peers import PeerError
from peers.oidc_realm import DEFAULT_USERS, KeycloakUser, keycloak_realm
from peers.useroffice_graphql import load_sample_data, user_office

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

FRANK = KeycloakUser(username="frank", password="frank-password", sub="0b1c2d3e-4f50-4617-8293-a4b5c6d7e855",
                     email="frank.miller@example.org", first_name="Frank", last_name="Miller")
PASSWORDS = {u.username: u.password for u in (*DEFAULT_USERS, FRANK)}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    data = load_sample_data()
    data["users"].append({"id": 6, "firstname": "Frank", "lastname": "Miller", "email": FRANK.email,
                          "oidcSub": FRANK.sub, "institutionId": 2, "roles": ["user"]})
    try:
        with keycloak_realm(users=(*DEFAULT_USERS, FRANK)) as realm, user_office(data) as uo:
            base = tmp_path_factory.mktemp("keycloak-e2e")
            hub = HubProcess(base / "data", extra_env={
                "VISA_AUTHENTICATOR": "visa-keycloak",
                "VISA_KEYCLOAK_REALM_URL": realm.issuer,
                "VISA_KEYCLOAK_CLIENT_ID": realm.client_id,
                "VISA_KEYCLOAK_CLIENT_SECRET": realm.client_secret,
                "VISA_USER_OFFICE_URL": uo.url,
                "VISA_USER_OFFICE_TOKEN": uo.token,
            })
            try:
                yield hub.start()
            finally:
                hub.stop()
                hub.kill_instances()
    except PeerError as exc:
        missing_peer(str(exc))


def sign_in(page, hub: HubProcess, username: str) -> None:
    """Open the hub and sign in on the realm's (Keycloak's) login page."""
    page.goto(f"{hub.url}/hub/spawn")
    page.wait_for_selector("#kc-form-login")
    assert page.url.startswith(hub.url) is False  # we are at the identity provider, not the hub
    page.fill("#username", username)
    page.fill("#password", PASSWORDS[username])
    page.click("#kc-login")


def offered(page) -> list[str]:
    return page.eval_on_selector_all("input[name=experiment]", "inputs => inputs.map(i => i.value)")


def test_member_lands_on_the_spawn_form_with_exactly_her_experiments(hub: HubProcess, page, tmp_path: Path):
    sign_in(page, hub, "alice")
    page.wait_for_selector("#visa-spawn-form")
    assert offered(page) == ["587412", "587533"]
    assert page.locator("input[name=experiment][value='587412']").is_checked()  # the running one
    assert "Self-assembly of peptide amphiphiles under shear" in page.inner_text("#visa-spawn-form")
    page.screenshot(path=str(tmp_path / "keycloak-spawn-form.png"))

    # logout ends the Keycloak session: logging in again asks for the password
    page.goto(f"{hub.url}/hub/logout")
    page.wait_for_selector("#kc-form-login")
    assert "/realms/ess/" in page.url
    page.goto(f"{hub.url}/hub/spawn")
    page.wait_for_selector("#kc-form-login")


def test_user_without_experiment_sees_the_refusal_page(hub: HubProcess, page):
    sign_in(page, hub, "frank")
    page.wait_for_selector("text=not a member of any experiment in the User Office")
    assert "Frank Miller" in page.content()


def test_staff_see_every_experiment_and_admins_get_the_admin_page(hub: HubProcess, page):
    sign_in(page, hub, "dave")  # staff (realm role) and admin (client role)
    page.wait_for_selector("#visa-spawn-form")
    assert offered(page) == ["587412", "587533"]
    response = page.goto(f"{hub.url}/hub/admin")
    assert response.status == 200 and re.search(r"/hub/admin", page.url)


def test_support_staff_are_not_admins(hub: HubProcess, page):
    sign_in(page, hub, "carol")  # staff (realm role) and support (client role)
    page.wait_for_selector("#visa-spawn-form")
    assert offered(page) == ["587412", "587533"]
    response = page.goto(f"{hub.url}/hub/admin")
    assert response.status == 403
