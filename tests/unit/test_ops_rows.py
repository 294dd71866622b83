"""The operator console's rows and filters, and the metrics' labels, from hub-like objects (no hub needed)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from tornado import web

from visa_hub import metrics
from visa_hub.ops.instances import choices, instance_rows, matching

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


class OpenStackSpawner:  # the backend label comes from the class name, as for the real ones
    def __init__(self, name: str, experiment: str, instrument: str, pending=None, ready=True, state=None):
        self.name, self.pending, self.ready = name, pending, ready
        self.user_options = {"experiment": experiment, "flavour": "small"}
        self.session_summary = {"experiment": {"code": experiment, "title": f"{experiment} title",
                                               "proposal_pk": 42},
                                "instrument": instrument, "flavour": {"name": "small"}, "image": "ess",
                                "image_title": "ESS analysis", "expires_at": "2026-11-28T12:00:00+00:00"}
        self.orm_spawner = SimpleNamespace(started=dt.datetime(2026, 11, 27, 11, 0),
                                           last_activity=dt.datetime(2026, 11, 27, 11, 59))
        self._state = state or {"server_id": f"srv-{name or 'default'}"}

    def get_state(self):
        return self._state


def user(name: str, *spawners) -> SimpleNamespace:
    return SimpleNamespace(name=name, spawners={s.name: s for s in spawners})


USERS = [
    user("alice", OpenStackSpawner("", "LOKI-2026-042", "LoKI"),
         OpenStackSpawner("gpu", "ODIN-2026-007", "ODIN", pending="spawn", ready=False)),
    user("bob", OpenStackSpawner("", "LOKI-2026-042", "LoKI", pending="stop")),
    user("carl", OpenStackSpawner("", "LOKI-2026-042", "LoKI", ready=False)),  # stopped: not a row
]
LINKS = {"user": "{hub}/admin?name_filter={owner}", "experiment": "https://uo.example/ProposalPage/{proposal_pk}"}


def test_ops_rows_carry_what_an_operator_needs():
    rows = instance_rows(USERS, NOW, "/hub/", LINKS, {"openstack": "https://horizon.example/i/{resource_id}/"})
    assert [(r["owner"], r["server_name"], r["state"]) for r in rows] == [
        ("alice", "", "running"), ("alice", "gpu", "starting"), ("bob", "", "stopping")]
    alice = rows[0]
    assert (alice["experiment"], alice["instrument"], alice["flavour"], alice["image"], alice["backend"]) == \
        ("LOKI-2026-042", "LoKI", "small", "ESS analysis", "openstack")
    assert alice["age_seconds"] == 3600 and alice["last_activity"].startswith("2026-11-27T11:59")
    assert alice["links"] == {"user": "/hub/admin?name_filter=alice",
                              "experiment": "https://uo.example/ProposalPage/42",
                              "backend": "https://horizon.example/i/srv-default/"}


def test_ops_filters_and_their_choices():
    rows = instance_rows(USERS, NOW, "/hub/", LINKS, {})
    assert "backend" not in rows[0]["links"]  # no template for this backend: the id only
    assert choices(rows)["state"] == ["running", "starting", "stopping"]
    assert [r["owner"] for r in matching(rows, {"instrument": "LoKI"})] == ["alice", "bob"]
    assert [r["server_name"] for r in matching(rows, {"owner": "alice", "state": "starting"})] == ["gpu"]
    assert matching(rows, {"experiment": "", "nonsense": "x"}) == rows  # empty and unknown filters ignored


def test_ops_metrics_labels_of_spawns_and_failures():
    assert metrics.backend_of(OpenStackSpawner("", "X", "Y")) == "openstack"
    assert metrics.failure_reason(web.HTTPError(400, "refused")) == "policy"
    assert metrics.failure_reason(TimeoutError()) == "timeout"
    error = RuntimeError("quota")
    error.metrics_reason = "quota"
    assert metrics.failure_reason(error) == "quota"
    spawner = OpenStackSpawner("", "X", "Y")
    before = metrics.SPAWN_FAILURES.labels("openstack", "quota")._value.get()
    metrics.spawn_failed(spawner, "quota", error)
    metrics.spawn_failed(spawner, "quota", error)  # the same failure is counted once
    assert metrics.SPAWN_FAILURES.labels("openstack", "quota")._value.get() == before + 1


def test_ops_metrics_slurm_queue_wait_once_per_job():
    import time

    job = SimpleNamespace(job_id="4242", _submitted_at=time.monotonic() - 30.0, req_partition="")
    count = metrics.SLURM_QUEUE_WAIT.labels("default")._sum.get()
    metrics.slurm_job_running(job)
    metrics.slurm_job_running(job)  # seen running again at the next poll: not a second wait
    waited = metrics.SLURM_QUEUE_WAIT.labels("default")._sum.get() - count
    assert 29.0 < waited < 60.0
    metrics.slurm_job_running(SimpleNamespace(job_id="4243", _submitted_at=float("-inf"), req_partition=""))
    assert metrics.SLURM_QUEUE_WAIT.labels("default")._sum.get() - count == waited  # never submitted: nothing
