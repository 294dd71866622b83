"""Dask profiles: catalog validation, what the policy allows, and the dask configuration an instance gets."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from conftest import require_module

from visa_hub.catalog import SiteDataError, load_catalog
from visa_hub.dask.config import DASHBOARD_LINK, DaskSession, DaskSessionError, SessionLock, dask_config
from visa_hub.dask.instance import write_dask_config
from visa_hub.demo import DEMO_CATALOG
from visa_hub.people import Experiment, Person
from visa_hub.policy import SpawnRequest, plan_session

NOW = dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC)
LOCK = SessionLock("/h/.visa/dask/s/ca.pem", "/h/.visa/dask/s/cert.pem", "/h/.visa/dask/s/key.pem",
                   expires_at=NOW + dt.timedelta(hours=24))


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
        (lambda d: d["dask_profiles"][0].update(job_directives=["--deadline=now+1day"]),
         "dask_profiles[0].job_directives[0]", "worker jobs always end by the session's expiry"),
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
    config = dask_config(session, LOCK, NOW, python="/venv/bin/python")
    assert "account" not in config["jobqueue"]["slurm"] and "labextension" not in config  # nothing to default to
    assert config["distributed"]["comm"]["require-encryption"] is True  # but still locked to the owner


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
    config = dask_config(session, LOCK, NOW, python="/venv/bin/python",
                         log_directory="/home/alice/dask-worker-logs")
    slurm = config["jobqueue"]["slurm"]
    assert {k: slurm[k] for k in ("cores", "memory", "processes", "queue", "account", "walltime", "python")} == {
        "cores": 2, "memory": "4GiB", "processes": 1, "queue": "ess", "account": "EXP-1", "walltime": "02:00:00",
        "python": "/venv/bin/python"}
    deadline = (NOW + dt.timedelta(hours=24)).astimezone().replace(tzinfo=None).isoformat()
    assert slurm["name"] == "dask-EXP-1"
    assert slurm["job-extra-directives"] == [f"--deadline={deadline}", "--time-min=00:05:00"]
    assert config["labextension"]["factory"]["module"] == "visa_hub.dask.clusters"
    assert config["distributed"]["dashboard"]["link"] == DASHBOARD_LINK
    assert DASHBOARD_LINK.format(JUPYTERHUB_SERVICE_PREFIX="/user/alice/", port=8787) == \
        "/user/alice/visa-dask/8787/status"
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


def _session_env(home: Path, expires_in: dt.timedelta) -> dict[str, str]:
    return {"VISA_DASK": plan_for("LoKI").environment["VISA_DASK"], "HOME": str(home),
            "DASK_CONFIG": str(home / "dask"), "JUPYTERHUB_USER": "alice",
            "VISA_EXPIRES_AT": (dt.datetime.now(dt.UTC) + expires_in).isoformat()}


def test_each_start_makes_credentials_only_the_owner_can_read_signed_by_a_ca_of_its_own(tmp_path):
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    path = write_dask_config(_session_env(tmp_path, dt.timedelta(hours=8)), python="/venv/bin/python")
    tls = yaml.safe_load(path.read_text())["distributed"]["comm"]["tls"]
    assert path.stat().st_mode & 0o777 == 0o600
    files = [Path(tls["ca-file"])] + [Path(tls[role][kind]) for role in ("scheduler", "worker", "client")
                                       for kind in ("cert", "key")]
    session_dir = files[0].parent
    assert session_dir.parent == tmp_path / ".visa" / "dask" / "instances" / "_default"  # the default server's
    assert all(f.parent == session_dir for f in files)
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert all(d.stat().st_mode & 0o777 == 0o700 for d in (tmp_path / ".visa", tmp_path / ".visa" / "dask",
                                                           session_dir.parent.parent, session_dir.parent,
                                                           session_dir, tmp_path / "dask-worker-logs"))
    ca = x509.load_pem_x509_certificate(Path(tls["ca-file"]).read_bytes())
    cert = x509.load_pem_x509_certificate(Path(tls["worker"]["cert"]).read_bytes())
    cert.verify_directly_issued_by(ca)
    assert "-----BEGIN PRIVATE KEY-----" in Path(tls["worker"]["key"]).read_text()
    assert not list(session_dir.glob("*ca*key*"))  # the CA's key is never written: no more certificates

    # the next start: a new CA, which does not trust the previous session's certificate
    again = yaml.safe_load(write_dask_config(_session_env(tmp_path, dt.timedelta(hours=8))).read_text())
    new_ca = x509.load_pem_x509_certificate(Path(again["distributed"]["comm"]["tls"]["ca-file"]).read_bytes())
    with pytest.raises(InvalidSignature):
        cert.verify_directly_issued_by(new_ca)


def test_distributed_reads_the_session_tls_for_every_role(tmp_path):
    import dask.config
    from distributed.security import Security

    def dotted(mapping, prefix=""):  # nested YAML → dask.config.set's dotted keys (keeps dask's other defaults)
        for key, value in mapping.items():
            if isinstance(value, dict) and value:
                yield from dotted(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    write_dask_config(_session_env(tmp_path, dt.timedelta(hours=8)), python="/venv/bin/python")
    with dask.config.set(dict(dotted(dask.config.collect(paths=[str(tmp_path / "dask")], env={})))):
        security = Security()
        assert security.require_encryption
        for role in ("scheduler", "worker", "client"):  # loads each certificate, key and the CA: files are whole
            assert security.get_connection_args(role)["ssl_context"] is not None
            assert security.get_listen_args(role)["require_encryption"] is True
        assert dask.config.get("distributed.scheduler.preload") == ["visa_hub.dask.dashboard"]
        assert dask.config.get("jobqueue.slurm.scheduler-options") == {"dashboard_address": "127.0.0.1:0"}


def test_default_profile_walltime_is_cut_to_the_time_left(tmp_path):
    path = write_dask_config(_session_env(tmp_path, dt.timedelta(minutes=45)), python="/venv/bin/python")
    slurm = yaml.safe_load(path.read_text())["jobqueue"]["slurm"]
    assert slurm["walltime"] in ("00:44:00", "00:45:00")  # the profile's 02:00:00 would outlive the session
    assert slurm["job-extra-directives"][-1] == "--time-min=00:05:00"
    assert slurm["job-extra-directives"][-2].startswith("--deadline=")


def test_unreadable_expiry_is_a_clear_error(tmp_path):
    env = {**_session_env(tmp_path, dt.timedelta(hours=1)), "VISA_EXPIRES_AT": "tomorrow"}
    with pytest.raises(DaskSessionError, match="VISA_EXPIRES_AT: the session's expiry is not an ISO 8601 time"):
        write_dask_config(env)


def test_unreadable_session_is_a_clear_error():
    with pytest.raises(DaskSessionError, match="VISA_DASK is not a visa-hub Dask session"):
        DaskSession.from_json("{not json")


def test_slurm_time_from_lifetime_hours():
    slurm_time = require_module("spawners.slurm", "install visa-hub with its dependencies (batchspawner)").slurm_time

    assert slurm_time(24) == "1-00:00:00"
    assert slurm_time(1.5) == "0-01:30:00"
    assert slurm_time(0.001) == "0-00:01:00"
