"""Homes and experiment data of OpenStack instances: the site settings, the names, the start-up script."""

from __future__ import annotations

import os
import shlex
import subprocess
from types import SimpleNamespace

import pytest
from conftest import missing_peer
from traitlets import TraitError

from spawners.openstack import OpenStackSpawner
from spawners.openstack.account import InstanceAccount
from spawners.openstack.homes import (
    ShareSettingError,
    data_mount_point,
    experiment_group,
    instance_label,
    parse_data_source,
    parse_home_source,
    volume_home_conflict,
)
from spawners.openstack.userdata import FAILED_MARK, DataMount, build_user_data


def test_home_sources_are_a_volume_or_an_export_per_person():
    assert parse_home_source("volume") is None
    template = parse_home_source("nfs://files.example/export/homes/{username}/")
    assert template.export(username="alice").source == "files.example:/export/homes/alice"
    assert parse_home_source("nfs://[fd00::5]/homes/{username}").export(username="bob").source == \
        "[fd00::5]:/homes/bob"
    for bad, reason in [("/export/homes/{username}", "not an nfs://"), ("nfs://files.example/homes", "placeholder"),
                        ("nfs://files.example/homes/{user}", "unknown placeholder"),
                        ("nfs://files.example:2049/homes/{username}", "only a server name and a path"),
                        ("nfs://files.example/homes/../{username}", "without '.' or '..'"),
                        ("nfs:///homes/{username}", "no valid file server"),
                        ("nfs://files.example/homes/{username}?sec=krb5", "only a server name")]:
        with pytest.raises(ShareSettingError, match="OpenStackSpawner.home_source") as error:
            parse_home_source(bad)
        assert reason in str(error.value), (bad, error.value)


def test_the_spawner_refuses_a_bad_share_setting_when_configured():
    with pytest.raises(TraitError, match="home_source: 'nfs://files.example/homes' must name a directory per"):
        OpenStackSpawner(home_source="nfs://files.example/homes")
    with pytest.raises(TraitError, match="experiment_data_source"):
        OpenStackSpawner(experiment_data_source="nfs://files.example/data/{username}")
    assert OpenStackSpawner(home_source=" nfs://f.example/h/{username} ").home_source == "nfs://f.example/h/{username}"


def test_values_that_are_not_one_directory_never_reach_a_path():
    template = parse_data_source("nfs://files.example/experiments/{experiment}")
    assert parse_data_source("") is None
    assert template.export(experiment="LOKI-2026-042").path == "/experiments/LOKI-2026-042"
    for bad in ("..", "a/b", "x y", "$(id)", ""):
        with pytest.raises(ShareSettingError):
            template.export(experiment=bad)
    assert data_mount_point("/data/{experiment}", "LOKI-2026-042") == "/data/LOKI-2026-042"
    with pytest.raises(ShareSettingError):
        data_mount_point("/data/{experiment}", "../etc")
    assert experiment_group("LOKI-2026-042") == "exp-loki-2026-042"
    assert len(experiment_group("A" * 60)) <= 32


def test_the_refusal_names_the_instance_that_holds_her_home():
    assert instance_label("LOKI-2026-042", "loki-2026-042", "loki-2026-042") == "LOKI-2026-042"
    assert instance_label("LOKI-2026-042", "loki-2026-042-2", "loki-2026-042") == "LOKI-2026-042 (loki-2026-042-2)"
    assert instance_label("", "", "") == "your default instance"
    sentence = volume_home_conflict("LOKI-2026-042")
    assert "stop LOKI-2026-042 first, or ask the site for shared homes." in sentence


def script(**overrides) -> str:
    arguments = dict(
        account=InstanceAccount(name="alice", uid=2345678, home="/home/alice"), prefix="/opt/visa-instance",
        command=["/opt/visa-instance/bin/jupyterhub-singleuser"], env={"VISA_EXPERIMENT": "LOKI-2026-042"},
        port=8888, base_url="/user/alice/loki-2026-042/", bootstrap_code="the-code",
        shared_home=parse_home_source("nfs://files.example/homes/{username}").export(username="alice"),
        mount_options="vers=4.2,hard")
    return build_user_data(**{**arguments, **overrides})


def test_user_data_mounts_a_shared_home_and_the_experiment_data():
    data = DataMount(parse_data_source("nfs://files.example/exp/{experiment}").export(experiment="LOKI-2026-042"),
                     "/data/LOKI-2026-042", "exp-loki-2026-042", 1_234_567_890)
    text = script(data=data)
    assert subprocess.run(["sh", "-n"], input=text, text=True).returncode == 0
    assert "HOME_SOURCE=files.example:/homes/alice" in text
    assert 'mount -t nfs -o vers=4.2,hard "$HOME_SOURCE" "$VISA_HOME"' in text
    assert 'claim "$VISA_HOME" "$uid" "$gid" 0700' in text and "chown -R" not in text  # never re-owns a shared home
    assert "/dev/disk/by-id" not in text
    assert "DATA_DIR=/data/LOKI-2026-042" in text and 'groupadd --gid 1234567890 "$DATA_GROUP"' in text
    assert 'claim "$DATA_DIR" - "$data_gid" 2770' in text
    assert f'fail() {{ echo "{FAILED_MARK}$*"; exit 1; }}' in text
    assert text.index("HOME_SOURCE=") < text.index("DATA_SOURCE=") < text.index("exec ")
    assert "DATA_SOURCE" not in script()  # no experiment data unless the site has them


def test_user_data_has_exactly_one_home():
    with pytest.raises(ValueError):
        script(volume_id="0123456789abcdef")
    with pytest.raises(ValueError):
        script(shared_home=None)
    volume = script(shared_home=None, volume_id="0123456789abcdef0123456789")
    assert "DEV=/dev/disk/by-id/virtio-0123456789abcdef0123" in volume and "HOME_SOURCE" not in volume


def test_user_data_quotes_mount_options():
    text = script(mount_options="hard;touch /pwned")
    assert f"-o {shlex.quote('hard;touch /pwned')} " in text
    assert subprocess.run(["sh", "-n"], input=text, text=True).returncode == 0


def test_claim_gives_only_a_new_empty_directory_away(tmp_path):
    """The script's ``claim``: an empty directory of root's becomes hers; one with files, or another's, never."""
    if os.geteuid() != 0:
        missing_peer("root, to give a directory away as user_data does")
    header = script().split("# -- her account")[0].replace("set -eu", "set -u")
    empty, used = tmp_path / "empty", tmp_path / "used"
    empty.mkdir()
    used.mkdir()
    (used / "thesis.tex").write_text("someone's")
    run = SimpleNamespace(**{
        name: subprocess.run(["sh", "-c", header + f'claim "{path}" 4242 4242 0700; echo "rc=$?"'],
                             capture_output=True, text=True).stdout.strip()
        for name, path in (("empty", empty), ("used", used))})
    assert run.empty == "rc=0" and (empty.stat().st_uid, empty.stat().st_mode & 0o777) == (4242, 0o700)
    assert run.used == "rc=1" and used.stat().st_uid == 0
    again = subprocess.run(["sh", "-c", header + f'claim "{empty}" 4242 4242 0700; echo "rc=$?"'],
                           capture_output=True, text=True).stdout.strip()
    assert again == "rc=0"  # already hers
