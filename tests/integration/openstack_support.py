"""Shared by the OpenStack spawner tests: the simulator seeded like the demo catalog, a hub using it.

Nothing is mocked: the hub is a real ``jupyterhub`` process with OpenStackSpawner, talking to the
simulator through the real openstacksdk; assertions read the simulator's state. The simulated VMs run their
user_data as root in a sandbox that sees the image (the provisioned instance environment at
/opt/visa-instance, plus this directory's stand-in Lab) and nothing of the hub.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from hubtest import HubProcess, UserSession
from visa_hub.testing.openstack_sim import Quota, SimulatorThread

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "openstack_hub_config.py"
# the stand-in Lab, put into the simulated VMs' image and run with the instance environment's Python
STANDIN = ["/opt/visa-instance/bin/python", "/opt/visa-test/openstack_standin_lab.py"]
TEST_IMAGE_FILES = {"/opt/visa-test/openstack_standin_lab.py": HERE / "openstack_standin_lab.py"}

# the demo catalog's flavours and cloud images (name, vcpus, ram MB, disk GB)
CATALOG_FLAVORS = [("small", 2, 4096, 20), ("medium", 4, 16384, 40), ("large", 16, 65536, 80),
                   ("gpu-large", 16, 131072, 80)]
CATALOG_IMAGES = ["ess-analysis-ubuntu-24.04-2026.10", "ess-analysis-ubuntu-24.04-2026.04"]
UNLIMITED = Quota(instances=-1, cores=-1, ram=-1, volumes=-1, gigabytes=-1, floating_ips=-1)


@dataclass
class Cloud:
    """The simulator and what a hub needs to use it."""

    thread: SimulatorThread
    clouds_yaml: Path

    @property
    def sim(self) -> Any:
        return self.thread.sim

    @property
    def env(self) -> dict[str, str]:
        return {"OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml), "OS_CLOUD": "visa-sim"}

    def read(self, func: Any) -> Any:
        """``func(sim)`` on the simulator's loop (consistent reads of its state)."""
        return self.thread.call(func, self.sim)

    def servers(self) -> list[Any]:
        return self.read(lambda sim: [s for s in sim.state.servers.values() if not s.deleted])

    def ports(self) -> list[dict]:
        return self.read(lambda sim: list(sim.state.ports.values()))

    def floating_ips(self) -> list[dict]:
        return self.read(lambda sim: list(sim.state.floating_ips.values()))

    def volumes(self) -> list[Any]:
        return self.read(lambda sim: list(sim.state.volumes.values()))



def start_cloud(tmp_path: Path, boot_delay: float = 0.3, instance_env: Path | None = None) -> Cloud:
    """The simulator; its VM image holds ``instance_env`` (a provisioned instance environment) at
    /opt/visa-instance, as a real image would."""
    image_files = {**TEST_IMAGE_FILES, **({"/opt/visa-instance": instance_env} if instance_env else {})}
    thread = SimulatorThread(workdir=tmp_path / "openstack-sim", boot_delay=boot_delay, flavors=CATALOG_FLAVORS,
                             images=CATALOG_IMAGES, quota=UNLIMITED, image_files=image_files).start()
    clouds_yaml = tmp_path / "clouds.yaml"
    clouds_yaml.write_text(yaml.safe_dump(thread.sim.clouds_yaml()))
    return Cloud(thread, clouds_yaml)


def people_yaml(path: Path, usernames: list[str]) -> Path:
    """A demo User Office where every user is a member of the running LoKI experiment."""
    path.write_text(yaml.safe_dump({
        "people": [{"username": u, "name": u.title()} for u in usernames],
        "experiments": [{"code": "LOKI-2026-042", "proposal_pk": 1042, "title": "Nanodiscs under shear",
                         "instrument": "LoKI", "starts": "today-3d", "ends": "today+4d",
                         "members": {"principal-investigator": usernames[:1], "co-proposer": usernames[1:]}}],
    }))
    return path


@dataclass
class OpenStackHub:
    hub: HubProcess
    cloud: Cloud
    service_token: str

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.hub.url}/hub/api", timeout=30,
                            headers={"Authorization": f"token {self.service_token}"})

    def owned_server_ids(self) -> set[str]:
        """Server ids in the hub's spawner state, for every user (what the hub believes it owns)."""
        with self.api() as api:
            users = api.get("/users", params={"include_stopped_servers": "1"}).json()
            return {server.get("state", {}).get("server_id") for user in users
                    for server in user.get("servers", {}).values()} - {None}


def start_openstack_hub(started: list[HubProcess], cloud: Cloud, tmp_path: Path, *, users: list[str] | None = None,
                        log_level: str = "INFO", extra_env: dict[str, str] | None = None,
                        **spawner: Any) -> OpenStackHub:
    token = secrets.token_hex(16)
    options = {"cloud_poll_interval": 2.0, "cloud_poll_fast_interval": 0.3, "reaper_grace": 5.0,
               "api_timeout": 3.0, "api_backoff": 0.3, **spawner}
    env = {**cloud.env, "VISA_TEST_OPENSTACK": json.dumps(options), "VISA_TEST_LOG_LEVEL": log_level,
           "VISA_TEST_SERVICE_TOKEN": token, **(extra_env or {})}
    if users:
        env["VISA_USER_OFFICE_FILE"] = str(people_yaml(tmp_path / "people.yaml", users))
    hub = HubProcess(tmp_path / "data", config_file=CONFIG, extra_env=env)
    started.append(hub)  # the caller stops them
    return OpenStackHub(hub.start(), cloud, token)


def kill_hub(hub: HubProcess) -> None:
    """SIGKILL the hub and its proxy: no clean shutdown, nothing saved on the way out."""
    os.killpg(hub.proc.pid, signal.SIGKILL)
    hub.proc.wait()
    hub.proc = None


def spawn(session: UserSession, **options: str) -> httpx.Response:
    """Request her server through the REST API (what the spawn form does, minus the HTML)."""
    return session.http.post(f"/hub/api/users/{session.username}/server", json=options,
                             headers=session._hub_xsrf())


def spawn_all(sessions: list[UserSession], **options: str) -> None:
    """Spawn for everyone at once (the REST call blocks up to the hub's slow_spawn_timeout)."""
    with ThreadPoolExecutor(len(sessions)) as pool:
        for response in pool.map(lambda session: spawn(session, **options), sessions):
            assert response.status_code in (201, 202), response.text
