"""Dask profiles: catalog validation, what the policy allows, and the dask configuration an instance gets."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from conftest import require_module

from visa_hub.catalog import SiteDataError, load_catalog
from visa_hub.dask.config import DASHBOARD_LINK, DaskSession, DaskSessionError, dask_config
from visa_hub.dask.instance import write_dask_config
from visa_hub.demo import DEMO_CATALOG
from visa_hub.people import Experiment, Person
from visa_hub.policy import SpawnRequest, plan_session

NOW = dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC)


def catalog_with(tmp_path: Path, mutate=None) -> Path:
    document = yaml.safe_load(DEMO_CATALOG.read_text())
    if mutate:
        mutate(document)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def plan_for(instrument: str, catalog_path: Path = DEMO_CATALOG):
    experiment = Experiment("EXP-1", "Test", instrument, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=2))
    person = Person("alice", "Alice", experiments=(experiment,))
    return plan_session(person, SpawnRequest("EXP-1"), load_catalog(catalog_path), NOW)


def test_demo_catalog_profiles_per_instrument():
    catalog = load_catalog(DEMO_CATALOG)
    standard = catalog.dask_profile("standard")
    assert standard is not None and (standard.partition, standard.cores, standard.memory_gb) == ("ess", 2, 4.0)
    assert catalog.instrument("ODIN").dask_profiles == ("standard", "gpu")
    assert catalog.instrument("LoKI").default_dask_profile == "standard"  # the first listed


@pytest.mark.parametrize(
    ("mutate", "path", "problem"),
    [
        (lambda d: d["dask_profiles"][0].update(cores=0), "dask_profiles[0].cores", "≥ 1"),
        (lambda d: d["dask_profiles"][1].update(processes=8), "dask_profiles[1].processes", "must not exceed cores"),
        (lambda d: d["dask_profiles"][0].update(walltime="2 hours"), "dask_profiles[0].walltime",
         "must be a Slurm time like 01:30:00"),
        (lambda d: d["dask_profiles"][0].pop("partition"), "dask_profiles[0].partition", "is required"),
        (lambda d: d["dask_profiles"][1].update(name="standard"), "dask_profiles[1].name",
         "duplicate Dask profile name 'standard'"),
        (lambda d: d["dask_profiles"][0].update(queue="ess"), "dask_profiles[0].queue", "unknown key"),
        (lambda d: d["dask_profiles"][2].update(job_directives=["--account=other"]),
         "dask_profiles[2].job_directives[0]", "the account is always the experiment's code"),
        (lambda d: d["dask_profiles"][2].update(job_directives=["qos=high"]), "dask_profiles[2].job_directives[0]",
         "must be an sbatch option"),
        (lambda d: d["instruments"][0]["dask_profiles"].append("huge"), "instruments[0].dask_profiles[2]",
         "unknown Dask profile 'huge'"),
        (lambda d: d["instruments"][1].update(default_dask_profile="gpu"), "instruments[1].default_dask_profile",
         "not one of this instrument's dask_profiles"),
    ],
)
def test_profile_mistakes_name_file_and_key(tmp_path, mutate, path, problem):
    catalog = catalog_with(tmp_path, mutate)
    with pytest.raises(SiteDataError) as error:
        load_catalog(catalog)
    assert error.value.source == str(catalog) and error.value.path == path
    assert problem in error.value.problem
    assert str(error.value).startswith(f"{catalog}: {path}: ")


def test_catalog_without_dask_profiles_still_loads(tmp_path):
    def strip(document):
        document.pop("dask_profiles")
        for instrument in document["instruments"]:
            instrument.pop("dask_profiles", None)
            instrument.pop("default_dask_profile", None)

    plan = plan_for("LoKI", catalog_with(tmp_path, strip))
    assert plan.dask_profiles == () and plan.default_dask_profile is None
    session = DaskSession.from_json(plan.environment["VISA_DASK"])
    assert "jobqueue" not in dask_config(session, python="/venv/bin/python")  # nothing to default to


def test_plan_carries_the_instruments_profiles_and_the_account():
    plan = plan_for("ODIN")
    assert [p.name for p in plan.dask_profiles] == ["standard", "gpu"]
    assert plan.default_dask_profile.name == "standard"
    assert plan.summary()["dask_profiles"] == ["standard", "gpu"]
    dask = json.loads(plan.environment["VISA_DASK"])
    assert dask["account"] == "EXP-1" and dask["default"] == "standard"
    assert [p["name"] for p in dask["profiles"]] == ["standard", "gpu"]


def test_dask_config_in_dasks_own_keys():
    session = DaskSession.from_json(plan_for("ODIN").environment["VISA_DASK"])
    config = dask_config(session, python="/venv/bin/python", log_directory="/home/alice/dask-worker-logs")
    slurm = config["jobqueue"]["slurm"]
    assert {k: slurm[k] for k in ("cores", "memory", "processes", "queue", "account", "walltime", "python")} == {
        "cores": 2, "memory": "4GiB", "processes": 1, "queue": "ess", "account": "EXP-1", "walltime": "02:00:00",
        "python": "/venv/bin/python"}
    assert slurm["name"] == "dask-EXP-1" and slurm["job-extra-directives"] == []
    assert config["labextension"]["factory"]["module"] == "visa_hub.dask.clusters"
    assert config["distributed"]["dashboard"]["link"] == DASHBOARD_LINK
    assert DASHBOARD_LINK.format(JUPYTERHUB_SERVICE_PREFIX="/user/alice/", port=8787) == \
        "/user/alice/proxy/8787/status"
    gpu = config["visa-hub"]["dask"]["profiles"]["gpu"]
    assert gpu["job_extra_directives"] == ["--gres=gpu:1"] and gpu["max_jobs"] == 2


def test_instance_writes_dask_config_where_dask_reads_it(tmp_path):
    import dask.config

    env = {"VISA_DASK": plan_for("LoKI").environment["VISA_DASK"], "HOME": str(tmp_path),
           "DASK_CONFIG": str(tmp_path / "dask")}
    path = write_dask_config(env, python="/venv/bin/python")
    assert path == tmp_path / "dask" / "visa-hub.yaml"
    loaded = dask.config.collect(paths=[str(tmp_path / "dask")], env={})
    assert loaded["jobqueue"]["slurm"]["account"] == "EXP-1"
    assert loaded["jobqueue"]["slurm"]["log-directory"] == str(tmp_path / "dask-worker-logs")
    assert write_dask_config({"HOME": str(tmp_path)}) is None  # not a visa-hub instance: nothing written


def test_unreadable_session_is_a_clear_error():
    with pytest.raises(DaskSessionError, match="VISA_DASK is not a visa-hub Dask session"):
        DaskSession.from_json("{not json")


def test_slurm_time_from_lifetime_hours():
    slurm_time = require_module("spawners.slurm", "install visa-hub with its dependencies (batchspawner)").slurm_time

    assert slurm_time(24) == "1-00:00:00"
    assert slurm_time(1.5) == "0-01:30:00"
    assert slurm_time(0.001) == "0-00:01:00"
