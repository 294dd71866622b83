"""Each of a person's instances has its own Dask configuration and credentials, though they share her home."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import yaml

from visa_hub.catalog import load_catalog
from visa_hub.dask.instance import use_instance_config, write_dask_config
from visa_hub.dask.per_instance import instance_config_dir, instance_key
from visa_hub.demo import DEMO_CATALOG
from visa_hub.jupyter_defaults import DIRECTORY, jupyter_config_path
from visa_hub.people import Experiment, Person
from visa_hub.policy import SpawnRequest, plan_session

NOW = dt.datetime.now(dt.UTC)
CATALOG = load_catalog(DEMO_CATALOG)


def instance_environ(home: Path, experiment: str, instrument: str, server_name: str) -> dict[str, str]:
    """What a spawner gives alice's instance for ``experiment`` (a named server, or "" for the default one)."""
    member = Experiment(experiment, f"Title of {experiment}", instrument, NOW - dt.timedelta(days=1),
                        NOW + dt.timedelta(days=3))
    plan = plan_session(Person("alice", "Alice", experiments=(member,)), SpawnRequest(experiment), CATALOG, NOW)
    return {**plan.environment, "HOME": str(home), "JUPYTERHUB_USER": "alice", "JUPYTERHUB_SERVER_NAME": server_name}


def test_isolation_two_instances_in_one_home_keep_their_own_dask_config_and_credentials(tmp_path):
    loki = instance_environ(tmp_path, "LOKI-1", "LoKI", "loki-1")
    odin = instance_environ(tmp_path, "ODIN-1", "ODIN", "odin-1")
    loki_path, odin_path = use_instance_config(loki), use_instance_config(odin)
    # the server's environment now names its own directory (kernels and terminals inherit it)
    assert loki["DASK_CONFIG"] == str(tmp_path / ".config/dask/instances/loki-1") == str(loki_path.parent)
    assert odin["DASK_CONFIG"] == str(tmp_path / ".config/dask/instances/odin-1") == str(odin_path.parent)
    configs = {name: yaml.safe_load(path.read_text()) for name, path in (("loki", loki_path), ("odin", odin_path))}
    # ODIN's start did not overwrite LoKI's account, profiles or expiry
    assert configs["loki"]["jobqueue"]["slurm"]["account"] == "LOKI-1"
    assert configs["odin"]["jobqueue"]["slurm"]["account"] == "ODIN-1"
    assert set(configs["loki"]["visa-hub"]["dask"]["profiles"]) == {"standard", "bigmem"}
    assert set(configs["odin"]["visa-hub"]["dask"]["profiles"]) == {"standard", "gpu"}
    tls = {name: Path(c["distributed"]["comm"]["tls"]["ca-file"]) for name, c in configs.items()}
    assert tls["loki"].parent.parent == tmp_path / ".visa/dask/instances/loki-1"
    assert tls["odin"].parent.parent == tmp_path / ".visa/dask/instances/odin-1"
    assert tls["loki"].exists() and tls["odin"].exists()
    assert "instance loki-1 started" in loki_path.read_text().splitlines()[0]


def test_dask_reads_only_the_instance_directory_besides_her_own_settings(tmp_path):
    import dask.config

    shared = tmp_path / ".config" / "dask"
    shared.mkdir(parents=True)
    (shared / "mine.yaml").write_text("distributed:\n  admin:\n    tick:\n      limit: 7s\n")
    env = instance_environ(tmp_path, "LOKI-1", "LoKI", "loki-1")
    use_instance_config(env)
    use_instance_config(instance_environ(tmp_path, "ODIN-1", "ODIN", "odin-1"))
    loaded = dask.config.collect(paths=[str(shared), env["DASK_CONFIG"]], env={})
    assert loaded["jobqueue"]["slurm"]["account"] == "LOKI-1"
    assert "gpu" not in loaded["visa-hub"]["dask"]["profiles"]  # ODIN's profile is not merged in
    assert loaded["distributed"]["admin"]["tick"]["limit"] == "7s"  # her own settings still apply


def test_the_shared_file_of_earlier_versions_is_removed_but_never_hers(tmp_path):
    shared = tmp_path / ".config" / "dask"
    shared.mkdir(parents=True)
    old = shared / "visa-hub.yaml"
    old.write_text("# Written by visa-hub when this instance started: the Dask profiles of experiment ODIN-1.\n"
                   "visa-hub:\n  dask:\n    profiles:\n      gpu: {account: ODIN-1}\n")
    use_instance_config(instance_environ(tmp_path, "LOKI-1", "LoKI", "loki-1"))
    assert not old.exists()  # it would have added ODIN's gpu profile to every instance
    old.write_text("jobqueue: {slurm: {cores: 1}}\n")  # hers, by the same name
    use_instance_config(instance_environ(tmp_path, "LOKI-1", "LoKI", "loki-1"))
    assert old.read_text() == "jobqueue: {slurm: {cores: 1}}\n"


def test_an_explicit_dask_config_and_sessions_without_dask_are_left_alone(tmp_path):
    env = {**instance_environ(tmp_path, "LOKI-1", "LoKI", "loki-1"), "DASK_CONFIG": str(tmp_path / "chosen")}
    assert use_instance_config(env) == tmp_path / "chosen" / "visa-hub.yaml"
    bare = {"HOME": str(tmp_path), "JUPYTERHUB_SERVER_NAME": "x"}
    assert use_instance_config(bare) is None and "DASK_CONFIG" not in bare
    assert write_dask_config(bare) is None


def test_instance_directory_names_stay_inside_and_apart():
    assert instance_key({}) == instance_key({"JUPYTERHUB_SERVER_NAME": ""}) == "_default"
    assert instance_key({"JUPYTERHUB_SERVER_NAME": "loki-2026-042"}) == "loki-2026-042"
    assert instance_key({"JUPYTERHUB_SERVER_NAME": "_default"}) == "%5Fdefault"  # never the default server's
    assert instance_key({"JUPYTERHUB_SERVER_NAME": "../x"}) == "%2E%2E%2Fx"
    assert instance_config_dir({"HOME": "/h", "JUPYTERHUB_SERVER_NAME": "../.."}).parent == Path(
        "/h/.config/dask/instances")


def test_jupyter_config_path_puts_visa_hubs_instance_defaults_first():
    assert (DIRECTORY / "jupyter_server_config.json").exists()  # the app kernels' kernel spec manager
    assert jupyter_config_path({}) == str(DIRECTORY)
    assert jupyter_config_path({"JUPYTER_CONFIG_PATH": f"/site{os.pathsep}{DIRECTORY}"}) == \
        os.pathsep.join([str(DIRECTORY), "/site"])
