"""A member removed from the experiment in the User Office (a real RabbitMQ event, the GraphQL peer, Keycloak
login): the sessions service warns her, in the API (Lab, hub page) and by e-mail, and stops her running
instance after the grace period (20 s here), with a message saying why.
"""

from __future__ import annotations

import time

import pytest

from hubtest import UserSession, wait_until
from lifetime_support import ServiceClient, lifetime_hub, smtp  # noqa: F401
from peers.oidc_realm import DEFAULT_USERS, follow_login
from useroffice_support import broker, keycloak_hub_env, realm, remove_bob_by_event, uo  # noqa: F401

pytestmark = pytest.mark.integration

PASSWORDS = {u.username: u.password for u in DEFAULT_USERS}
LIFETIMES = {
    "users": {"default": "10m", "max": "10m", "inactivity": "never"},
    "staff": {"default": "10m", "max": "10m", "inactivity": "never"},
    "warnings": ["1m"],
    "membership_grace": "20s",
}
KEYCLOAK_CONFIG = """
c.KeycloakAuthenticator.auth_refresh_age = 2
c.GraphQLUserOffice.timeout = 3
"""


def test_lifetime_member_removed_by_event_instance_stopped_after_grace(lifetime_hub, smtp, realm, broker, uo):  # noqa: F811
    hub = lifetime_hub(LIFETIMES, extra=KEYCLOAK_CONFIG, **keycloak_hub_env(realm, uo, broker))
    bob = UserSession(hub, "bob")
    page = follow_login(bob.http, f"{hub.url}/hub/oauth_login?next=/hub/spawn", "bob", PASSWORDS["bob"])
    assert page.url.path == "/hub/spawn", page.text[:500]
    response = bob.submit_spawn_form(experiment="587412", flavour="small")
    assert response.status_code == 200, response.text[:1000]
    bob.wait_ready()
    service = ServiceClient(bob)
    view = service.wait_instance("bob")
    assert view["warnings"] == []
    # the hub and the sessions service each listen to the User Office's events
    wait_until(lambda: hub.log_text().count("Listening to User Office events") >= 2, 30,
               "the sessions service to listen to User Office events")

    remove_bob_by_event(uo, broker)
    removed = time.monotonic()
    warning = wait_until(lambda: next((w for w in service.instance("bob")["warnings"]
                                       if w["kind"] == "membership"), None), 15, "the membership warning")
    assert "no longer a member" in warning["message"]
    mail = wait_until(lambda: smtp.received("bob.jones@example.org", "no longer a member"), 15, "the warning e-mail")
    assert "587412" in mail[0]["Subject"]
    assert bob.server_model().get("ready"), "not stopped before the grace period"

    wait_until(lambda: not bob.server_model(), 60, "bob's instance to stop after the grace period")
    assert time.monotonic() - removed >= 19
    stopped = wait_until(lambda: smtp.received("bob.jones@example.org", "has stopped"), 30, "the 'stopped' e-mail")
    assert "no longer a member of its experiment" in stopped[0].get_content()
