"""Several instances per person on a real hub, through the REST APIs the dashboard uses.

alice runs two named instances (LOKI and ODIN): each has its own process, Dask configuration and session;
a third is refused with her quota named; both survive a hub restart (re-attached); a stopped one keeps its card
and starts again with the same settings. bob, another user, cannot read her instances (404, as JupyterHub
answers); olga, an admin, can.
"""

from __future__ import annotations

import pytest
import yaml

from hubtest import UserSession, instance_processes, wait_until

pytestmark = pytest.mark.integration

INSTANCES = "/hub/api/visa/users/{}/instances"


class Person(UserSession):
    def instances(self, whose: str | None = None):
        return self.http.get(INSTANCES.format(whose or self.username), headers=self._hub_xsrf())

    def cards(self) -> dict[str, dict]:
        response = self.instances()
        assert response.status_code == 200, response.text
        return {card["name"]: card for card in response.json()["instances"]}

    def start(self, name: str, **options):
        return self.http.post(f"/hub/api/users/{self.username}/servers/{name}", json=options,
                              headers=self._hub_xsrf())

    def wait_running(self, *names: str, timeout: float = 90) -> dict[str, dict]:
        def running():
            cards = self.cards()
            return cards if all(cards.get(n, {}).get("state") == "running" for n in names) else None

        return wait_until(running, timeout, f"{self.username}'s instances {names} to run")


@pytest.fixture
def people():
    made: list[Person] = []

    def make(hub, username):
        person = Person(hub, username)
        person.login()
        made.append(person)
        return person

    yield make
    for person in made:
        person.close()


def test_dashboard_api_two_instances_quota_restart_and_privacy(start_hub, people):
    hub = start_hub(VISA_KEEP_SERVERS="1")
    alice = people(hub, "alice")
    assert alice.start("loki-2026-042", experiment="LOKI-2026-042").status_code in (201, 202)
    assert alice.start("odin-2026-007", experiment="ODIN-2026-007", lifetime_hours="12").status_code in (201, 202)
    cards = alice.wait_running("loki-2026-042", "odin-2026-007")

    loki, odin = cards["loki-2026-042"]["session"], cards["odin-2026-007"]["session"]
    assert (loki["experiment"]["code"], loki["flavour"]["label"]) == ("LOKI-2026-042", "medium (4 CPU, 16 GB)")
    assert (odin["experiment"]["code"], odin["flavour"]["label"]) == ("ODIN-2026-007", "large (16 CPU, 64 GB)")
    assert odin["image"]["title"] == "ESS analysis (scipp, mantid, 2026.10)" and odin["lifetime_hours"] == 12
    quota = alice.instances().json()["quota"]
    assert quota["used"] == {"instances": 2, "cpus": 20, "memory_gb": 80, "gpus": 0} and quota["full"]

    # each instance: its own process, and its own Dask configuration (accounted to its own experiment)
    for name, account in (("loki-2026-042", "LOKI-2026-042"), ("odin-2026-007", "ODIN-2026-007")):
        assert len(instance_processes(hub.data_dir, name)) == 1
        config = hub.data_dir / f"homes/alice/.config/dask/instances/{name}/visa-hub.yaml"
        wait_until(config.exists, 30, f"the Dask configuration of {name}")
        assert yaml.safe_load(config.read_text())["jobqueue"]["slurm"]["account"] == account

    # a third: refused with her quota named, nothing started
    third = alice.start("loki-2026-042-2", experiment="LOKI-2026-042")
    assert third.status_code == 400
    assert 'your quota ("users" in the site catalog) allows 2 at a time' in third.json()["message"]
    assert set(alice.cards()) == {"loki-2026-042", "odin-2026-007"}  # a refused request is no instance
    assert not instance_processes(hub.data_dir, "loki-2026-042-2")

    # only she (and admins) can read her instances
    bob = people(hub, "bob")
    refused = bob.instances("alice")  # JupyterHub's answer to a missing scope: as if she did not exist
    assert refused.status_code == 404 and "LOKI" not in refused.text
    assert bob.cards() == {}
    olga = people(hub, "olga")
    assert set(card["name"] for card in olga.instances("alice").json()["instances"]) == set(cards)

    # a hub restart re-attaches both, each to its own process and session
    before = {name: instance_processes(hub.data_dir, name) for name in cards}
    hub.restart()
    after = alice.wait_running("loki-2026-042", "odin-2026-007")
    assert {name: instance_processes(hub.data_dir, name) for name in cards} == before
    assert after["odin-2026-007"]["session"]["expires_at"] == odin["expires_at"]

    # stopped: the card stays with its last session; started again with the same settings
    stop = alice.http.delete("/hub/api/users/alice/servers/odin-2026-007", headers=alice._hub_xsrf())
    assert stop.status_code in (202, 204)
    wait_until(lambda: alice.cards()["odin-2026-007"]["state"] == "stopped", 60, "ODIN to stop")
    stopped = alice.cards()["odin-2026-007"]
    assert stopped["session"]["experiment"]["code"] == "ODIN-2026-007"
    assert stopped["user_options"] == {"experiment": "ODIN-2026-007", "lifetime_hours": "12"}
    assert alice.cards()["loki-2026-042"]["state"] == "running"  # the other keeps running
    assert alice.start("odin-2026-007", **stopped["user_options"]).status_code in (201, 202)
    again = alice.wait_running("odin-2026-007")["odin-2026-007"]["session"]
    assert again["lifetime_hours"] == 12 and again["expires_at"] > odin["expires_at"]
