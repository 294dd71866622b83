"""``/hub/metrics`` carries visa-hub's own series, with values that follow what happened: a spawn, a refusal, a
cloud that fails, a quota that is used up.

A real hub with the OpenStack backend (the simulator, the real openstacksdk, the stand-in Lab), scraped with
a service token holding ``read:metrics`` and parsed with prometheus_client's own parser.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hubtest import UserSession
from openstack_support import STANDIN, Cloud, spawn, start_openstack_hub

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

USERS = ["ana", "ben", "cas", "dan"]
CREATE = r"/compute/v2\.1/servers$"
EXPERIMENT = "LOKI-2026-042"


def scrape(env) -> dict[tuple[str, frozenset], float]:
    """Every sample of /hub/metrics as {(name, labels): value}."""
    with env.api() as api:
        response = api.get(f"{env.hub.url}/hub/metrics")
    assert response.status_code == 200, response.text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict, name: str, **labels: str) -> float:
    """Sum over the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


def test_ops_metrics_after_a_spawn_a_refusal_and_cloud_faults(cloud: Cloud, hubs, tmp_path: Path):
    env = start_openstack_hub(hubs, cloud, tmp_path, users=USERS, cmd=STANDIN, args=[])
    sessions = {name: UserSession(env.hub, name) for name in USERS}
    for session in sessions.values():
        assert session.login().status_code == 200
    before = scrape(env)
    assert total(before, "visa_useroffice_lookups_total", backend="file", result="fresh") >= len(USERS)
    assert value(before, "visa_spawn_failures_total", backend="openstack", reason="policy") == 0

    # a spawn that works
    assert spawn(sessions["ana"], experiment=EXPERIMENT, flavour="small").status_code in (201, 202)
    sessions["ana"].wait_ready(timeout=60)
    # a refusal by the site's rules (an experiment she is not in): no cloud call at all
    creates = cloud.sim.stats().get("POST /compute/v2.1/servers", 0)
    refused = spawn(sessions["ben"], experiment="NOPE-2026-001", flavour="small")
    assert refused.status_code == 400
    # the cloud failing: every create answered 500 (1 + 3 retries), then a message for the person
    cloud.sim.faults.add(path=CREATE, method="POST", status=500, count=4)
    spawn(sessions["cas"], experiment=EXPERIMENT, flavour="small")
    assert "kept failing" in sessions["cas"].progress_messages(timeout=60)[-1]
    cloud.sim.faults.clear()
    # the project's cores used up
    cloud.sim.set_quota(cores=2)
    spawn(sessions["dan"], experiment=EXPERIMENT, flavour="small")
    assert "No capacity for flavour small" in sessions["dan"].progress_messages(timeout=60)[-1]
    cloud.sim.set_quota(cores=-1)
    assert cloud.sim.stats().get("POST /compute/v2.1/servers", 0) - creates == 4 + 1

    after = scrape(env)
    spawned = {"backend": "openstack", "instrument": "LoKI", "flavour": "small"}
    assert value(after, "visa_spawn_duration_seconds_count", **spawned) == 1
    assert 0 < value(after, "visa_spawn_duration_seconds_sum", **spawned) < 60
    assert value(after, "visa_spawn_failures_total", backend="openstack", reason="policy") == 1
    assert value(after, "visa_spawn_failures_total", backend="openstack", reason="cloud_unavailable") == 1
    assert value(after, "visa_spawn_failures_total", backend="openstack", reason="quota") == 1
    assert value(after, "visa_cloud_api_errors_total", operation="create_server", kind="server_error") == 4
    assert value(after, "visa_cloud_api_errors_total", operation="create_server", kind="quota") == 1
    assert value(after, "visa_cloud_api_calls_total", operation="create_server") == 4 + 1 + 1
    assert value(after, "visa_cloud_api_calls_total", operation="list_servers") >= 2
    assert value(after, "visa_cloud_api_duration_seconds_count", operation="list_servers") == \
        value(after, "visa_cloud_api_calls_total", operation="list_servers")
    assert value(after, "visa_instances", state="running", backend="openstack", experiment=EXPERIMENT,
                 instrument="LoKI") == 1
    assert total(after, "visa_instances") == 1  # the failed ones are not counted as instances
    assert value(after, "visa_active_shares", kind="user") == 0
    # every spawn asked the User Office again before it started (a refused one too: membership first)
    assert total(after, "visa_useroffice_lookups_total", backend="file") >= \
        total(before, "visa_useroffice_lookups_total", backend="file") + 4
    for session in sessions.values():
        session.close()
