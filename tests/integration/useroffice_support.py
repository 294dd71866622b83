"""The real peers behind a Keycloak login with User Office membership, for tests that need them together.

``realm`` (the Keycloak realm with the default people), ``broker`` (a private RabbitMQ for the User Office's
events) and ``uo`` (the GraphQL User Office with its sample data) are fixtures: import them into a test module.
``keycloak_peer``, ``user_office_peer`` and ``rabbitmq_peer`` are for fixtures of a module's own (other people,
other data); ``keycloak_hub_env`` is the environment that switches a hub to these peers, as an operator would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import missing_peer

from peers import PeerError
from peers.oidc_realm import DEFAULT_USERS, keycloak_realm
from peers.useroffice_graphql import load_sample_data, user_office

#: The exchange the User Office publishes proposal events to.
PROPOSALS = "user_office_backend.fanout"


def keycloak_peer(**realm_options: Any) -> Iterator[Any]:
    """A running Keycloak realm, for a fixture to ``yield from`` (a missing peer says so)."""
    try:
        with keycloak_realm(**realm_options) as realm:
            yield realm
    except PeerError as exc:
        missing_peer(str(exc))


def user_office_peer(*args: Any, **options: Any) -> Iterator[Any]:
    """A running GraphQL User Office, for a fixture to ``yield from`` (a missing peer says so)."""
    try:
        with user_office(*args, **options) as peer:
            yield peer
    except PeerError as exc:
        missing_peer(str(exc))


def rabbitmq_peer() -> Iterator[Any]:
    """A private RabbitMQ broker, for a fixture to ``yield from`` (a missing peer says so)."""
    from peers_rabbitmq import INSTALL_HINT, rabbitmq_bin, rabbitmq_server

    if rabbitmq_bin() is None:
        missing_peer(INSTALL_HINT)
    with rabbitmq_server() as broker:
        yield broker


@pytest.fixture(scope="module")
def realm():
    yield from keycloak_peer(users=DEFAULT_USERS)


@pytest.fixture(scope="module")
def broker():
    yield from rabbitmq_peer()


@pytest.fixture
def uo():
    yield from user_office_peer(load_sample_data())


def remove_bob_by_event(uo: Any, broker: Any) -> None:
    """bob (user 2) leaves proposal 101 (587412, LoKI) in the User Office, which says so by an event."""
    uo.remove_member(101, 2)
    broker.publish(PROPOSALS, "PROPOSAL_UPDATED", {
        "proposalPk": 101, "shortCode": "587412", "title": "Self-assembly of peptide amphiphiles under shear",
        "callId": 1, "newStatus": "SCHEDULING", "instruments": [{"id": 1, "shortCode": "LOKI", "allocatedTime": 3}],
        "proposer": {"id": 1, "firstName": "Alice", "lastName": "Smith", "email": "alice.smith@example.org"},
        "members": [],
    })


def keycloak_hub_env(realm: Any, uo: Any, broker: Any = None) -> dict[str, str]:
    """The environment of a hub that logs in with ``realm`` and asks ``uo`` (and hears ``broker``'s events)."""
    env = {
        "VISA_AUTHENTICATOR": "visa-keycloak",
        "VISA_KEYCLOAK_REALM_URL": realm.issuer,
        "VISA_KEYCLOAK_CLIENT_ID": realm.client_id,
        "VISA_KEYCLOAK_CLIENT_SECRET": realm.client_secret,
        "VISA_USER_OFFICE_URL": uo.url,
        "VISA_USER_OFFICE_TOKEN": uo.token,
    }
    if broker is not None:
        env["VISA_USER_OFFICE_AMQP_URL"] = broker.url
    return env
