"""Her unix account on an instance, the user_data that starts her Lab, and the instance side of the token."""

from __future__ import annotations

import os
import pwd
import re
import shlex
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from spawners.openstack import OpenStackSpawner
from spawners.openstack.account import (
    DEFAULT_UID_RANGE,
    AccountError,
    InstanceAccount,
    checked_uid,
    default_uid,
    unix_name,
)
from spawners.openstack.errors import InstanceError
from spawners.openstack.userdata import TOKEN_FILE, build_user_data
from visa_hub.bootstrap import code_hash, code_matches, new_code
from visa_hub.instance.start import CODE_VARIABLE, server_environment, store_token, stored_token

REPO = Path(__file__).resolve().parents[2]
VALID_UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def test_unix_names_are_valid_and_distinct():
    assert unix_name("alice") == "alice"
    names = {hub: unix_name(hub) for hub in ["Alice.Smith@ess.eu", "alice-smith-ess-eu", "42", "Ålesund", "a" * 60]}
    assert all(VALID_UNIX_NAME.match(name) for name in names.values()), names
    assert len(set(names.values())) == len(names)
    assert unix_name("Alice.Smith@ess.eu") == unix_name("Alice.Smith@ess.eu")  # the same on every instance


def test_default_uids_are_stable_in_range_and_never_system_accounts():
    first, last = DEFAULT_UID_RANGE
    uids = {name: default_uid(name) for name in ("alice", "bob", "carl", "Alice.Smith@ess.eu")}
    assert all(first <= uid < last for uid in uids.values()) and len(set(uids.values())) == 4
    assert default_uid("alice") == uids["alice"]
    assert default_uid("alice", (5000, 5001)) == 5000
    for bad in (0, 999, 65534, True, "1234", 2**32):
        with pytest.raises(AccountError):
            checked_uid(bad, "mallory")
    assert checked_uid(1000, "alice") == 1000


def test_the_default_instance_command_is_the_instance_environments():
    assert OpenStackSpawner().cmd == ["/opt/visa-instance/bin/jupyterhub-singleuser"]
    assert OpenStackSpawner(instance_prefix="/srv/lab-env/").cmd == ["/srv/lab-env/bin/jupyterhub-singleuser"]


async def test_her_uid_comes_from_the_hook_then_the_map_then_the_default():
    async def ldap(spawner):
        return {"alice": 4242}.get(spawner.user.name)

    def spawner(name: str, **config) -> OpenStackSpawner:
        return OpenStackSpawner(user=SimpleNamespace(name=name), uid_map={"bob": 5151, "eve": 0}, **config)

    alice = await spawner("alice", uid_hook=ldap).instance_account()
    assert (alice.name, alice.uid, alice.home) == ("alice", 4242, "/home/alice")
    assert (await spawner("bob", uid_hook=ldap).instance_account()).uid == 5151
    assert (await spawner("carl").instance_account()).uid == default_uid("carl")
    with pytest.raises(InstanceError, match="could not be set up"):
        await spawner("eve").instance_account()  # a uid_map entry of 0 never runs Lab as root
    with pytest.raises(InstanceError, match="could not be set up"):
        await spawner("alice", uid_hook=lambda s: 1 / 0).instance_account()


def user_data(**overrides) -> str:
    arguments = dict(
        account=InstanceAccount(name="alice", uid=2345678, home="/home/alice"), prefix="/opt/visa-instance",
        command=["/opt/visa-instance/bin/jupyterhub-singleuser", "--debug"],
        env={"JUPYTERHUB_API_TOKEN": "secret-token", "JPY_API_TOKEN": "secret-token", "JUPYTERHUB_USER": "alice",
             "JUPYTERHUB_API_URL": "http://10.0.0.2:8081/hub/api", "HOME": "/root", "VISA_EXPERIMENT": "LOKI-1"},
        port=8888, base_url="/user/alice/", volume_id="0123456789abcdef0123456789", bootstrap_code="the-code")
    return build_user_data(**{**arguments, **overrides})


def test_user_data_carries_a_bootstrap_code_and_never_the_token():
    script = user_data()
    assert "secret-token" not in script and "JUPYTERHUB_API_TOKEN" not in script and "JPY_API_TOKEN" not in script
    assert "export VISA_BOOTSTRAP_CODE=the-code" in script
    assert "export JUPYTERHUB_API_URL=http://10.0.0.2:8081/hub/api" in script
    assert "export HOME" not in script  # her home is set on the instance, not root's from the hub
    assert "DEV=/dev/disk/by-id/virtio-0123456789abcdef0123" in script
    assert 'exec "$VISA_PREFIX/bin/python" -m visa_hub.instance.start' in script
    assert "useradd --uid \"$VISA_UID\"" in script and "VISA_UID=2345678" in script
    assert "--allow-root" not in script


def test_user_data_quotes_what_comes_from_users():
    hostile = "x'; touch /pwned; echo '$(id)"
    script = user_data(account=InstanceAccount(name="alice", uid=2345678, home=f"/home/{hostile}"),
                       base_url=f"/user/{hostile}/", env={"VISA_EXPERIMENT_TITLE": hostile})
    assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0
    assert f"VISA_HOME={shlex.quote('/home/' + hostile)}" in script
    assert f"export VISA_EXPERIMENT_TITLE={shlex.quote(hostile)}" in script
    assert f'"http://$IP:8888"{shlex.quote("/user/" + hostile + "/")}' in script


def test_bootstrap_codes_are_random_and_checked_by_hash():
    code = new_code()
    assert len(code) >= 43 and code != new_code()
    assert code_matches(code, code_hash(code)) and not code_matches(code + "x", code_hash(code))
    assert code not in code_hash(code)


def test_the_server_environment_has_the_token_and_nothing_of_roots():
    me = pwd.getpwuid(os.getuid())
    inherited = {CODE_VARIABLE: "the-code", "HOME": "/root", "PATH": "/root/bin", "SUDO_USER": "admin",
                 "JUPYTERHUB_USER": "alice", "VISA_EXPERIMENT": "LOKI-1", "JPY_API_TOKEN": "old"}
    env = server_environment(inherited, me, "/home/alice", "the-token", "http://10.0.0.5:8888/user/alice/")
    assert env["JUPYTERHUB_API_TOKEN"] == "the-token" and env["HOME"] == "/home/alice"
    assert env["USER"] == me.pw_name and env["JUPYTERHUB_SERVICE_URL"] == "http://10.0.0.5:8888/user/alice/"
    assert env["PATH"].split(":")[0].endswith("/bin") and "/root/bin" not in env["PATH"]
    assert CODE_VARIABLE not in env and "SUDO_USER" not in env and "JPY_API_TOKEN" not in env
    assert (env["JUPYTERHUB_USER"], env["VISA_EXPERIMENT"]) == ("alice", "LOKI-1")


def test_the_token_file_is_private_from_its_creation(tmp_path: Path):
    path = tmp_path / "var/lib/visa-instance/api-token"
    store_token(path, "the-token", os.getuid(), os.getgid())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "the-token"
    assert stored_token(path, os.getuid()) == "the-token"
    assert stored_token(path, os.getuid() + 1) is None  # someone else's file is not trusted
    path.chmod(0o644)
    assert stored_token(path, os.getuid()) is None  # nor one others could have read (or written)


def test_the_instance_recipes_use_the_spawners_prefix_and_the_provisioning_script():
    prefix = OpenStackSpawner().instance_prefix
    for recipe in ("containers/instance/instance.def", "containers/instance/build-vm-image.sh"):
        text = (REPO / recipe).read_text()
        assert f"provision-instance.sh {prefix} " in text, recipe
    assert (REPO / "scripts/provision-instance.sh").stat().st_mode & 0o111
    assert TOKEN_FILE.startswith("/var/lib/")
