"""An OpenStack instance at its expiry: the sessions service stops it through the hub, the spawner deletes the
(simulated) cloud server, and her home volume stays for the next instance.
"""

from __future__ import annotations

import datetime as dt

import pytest

from hubtest import wait_until
from lifetime_support import EXPERIMENT, ServiceClient, lifetime_hub, login, smtp  # noqa: F401

pytestmark = pytest.mark.integration

OPENSTACK_CONFIG = """
c.JupyterHub.spawner_class = "visa-openstack"
c.OpenStackSpawner.cloud_poll_interval = 2.0
c.OpenStackSpawner.cloud_poll_fast_interval = 0.3
c.OpenStackSpawner.reaper_grace = 5.0
c.OpenStackSpawner.api_timeout = 3.0
"""


def test_lifetime_openstack_expiry_deletes_the_cloud_server(lifetime_hub, cloud):  # noqa: F811
    hub = lifetime_hub(extra=OPENSTACK_CONFIG, **cloud.env)
    alice, olga = login(hub, "alice"), login(hub, "olga")
    response = alice.submit_spawn_form(experiment=EXPERIMENT, flavour="small", lifetime_hours="0.05")
    assert response.status_code == 200, response.text[:1000]
    alice.wait_ready(timeout=120)
    (server,) = cloud.servers()
    service, admin = ServiceClient(alice), ServiceClient(olga)
    assert service.wait_instance("alice")["backend"] == "openstack"
    volumes = {v.id for v in cloud.volumes()}

    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=15)
    admin.post("api/instances/alice//expiry", {"expires_at": end.isoformat()})
    wait_until(lambda: not cloud.servers(), 90, "the cloud server to be deleted at the instance's expiry")
    assert (dt.datetime.now(dt.UTC) - end).total_seconds() < 40
    wait_until(lambda: not alice.server_model(), 30, "the hub to see the instance stopped")
    assert {v.id for v in cloud.volumes()} == volumes, "her home volume stays"
    assert server.id not in {s.id for s in cloud.servers()}
