"""Shared pieces of the lifetime tests: a short-lived test catalog, a hub config for it, the service's API."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import missing_peer, need_proxy, stop_hubs

from hubtest import REPO, HubProcess, UserSession, wait_until

SERVICE = "/services/visa-sessions/"
EXPERIMENT = "LOKI-2026-042"  # alice's (and bob's) running LoKI experiment in the demo User Office

#: 3-minute lifetimes with warnings 2 and 1 minutes before the end; +1 minute at once up to 5 minutes in all,
#: beyond that (up to 30 minutes) an admin decides. No inactivity stop unless a test asks for one.
SHORT_LIFETIMES = {
    "users": {"default": "3m", "max": "3m", "inactivity": "never"},
    "staff": {"default": "3m", "max": "3m", "inactivity": "never"},
    "warnings": ["2m", "1m"],
    "membership_grace": "20s",
    "extension": {"step": "1m", "auto": "all", "auto_up_to": "5m", "max": "30m"},
}


def write_catalog(directory: Path, lifetimes: dict[str, Any]) -> Path:
    """The demo catalog with ``lifetimes`` (instruments' own lifetime keys removed, so the section rules)."""
    catalog = yaml.safe_load((REPO / "visa_hub/demo/catalog.yaml").read_text())
    for instrument in catalog["instruments"]:
        instrument.pop("max_lifetime_hours", None)
        instrument.pop("default_lifetime_hours", None)
    catalog["lifetimes"] = lifetimes
    path = directory / "catalog-lifetime.yaml"
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    return path


HUB_CONFIG = """
from visa_hub.hubconfig import configure

c = get_config()  # noqa: F821
configure(c)
c.VisaSite.catalog_file = {catalog!r}
c.VisaSessions.poll_interval = 1
c.VisaSessions.admin_emails = ["olga@ess.example.org"]
c.JupyterHub.last_activity_interval = 2
c.Spawner.environment.update({{"JUPYTERHUB_ACTIVITY_INTERVAL": "2", "VISA_DESKTOP_ACTIVITY_SECONDS": "1"}})
{extra}
"""


def write_hub_config(directory: Path, catalog: Path, extra: str = "") -> Path:
    path = directory / "hub_config_lifetime.py"
    path.write_text(HUB_CONFIG.format(catalog=str(catalog), extra=extra))
    return path


class ServiceClient:
    """A logged-in person's calls to the sessions service (cookies from the hub's OAuth, XSRF header)."""

    def __init__(self, session: UserSession):
        self.session = session
        self.http = session.http
        page = self.http.get(SERVICE)
        assert page.status_code == 200, page.text[:500]

    def _xsrf(self) -> dict[str, str]:
        token = self.http.cookies.get("_xsrf", path=SERVICE)
        return {"X-XSRFToken": token} if token else {}

    def get(self, path: str) -> Any:
        response = self.http.get(SERVICE + path)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def post(self, path: str, body: dict[str, Any] | None = None, expect: int | None = 200) -> Any:
        response = self.http.post(SERVICE + path, json=body or {}, headers=self._xsrf())
        if expect is not None:
            assert response.status_code == expect, f"{path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def instance(self, user: str, server: str = "") -> dict[str, Any]:
        return self.get(f"api/instances/{user}/{server}")

    def wait_instance(self, user: str, server: str = "", timeout: float = 30) -> dict[str, Any]:
        def seen():
            response = self.http.get(SERVICE + f"api/instances/{user}/{server}")
            return response.json() if response.status_code == 200 else None

        return wait_until(seen, timeout, f"the sessions service to follow {user}/{server}")


def expires(view: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(view["expires_at"])


def relaunch_link(text: str) -> str:
    match = re.search(r"(http://\S+/hub/spawn/\S+)", text)
    assert match, f"no relaunch link in:\n{text}"
    return match.group(1)


def login(hub: HubProcess, user: str) -> UserSession:
    session = UserSession(hub, user)
    assert session.login().status_code == 200
    return session


@pytest.fixture
def smtp(tmp_path: Path):
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        missing_peer("aiosmtpd not installed (pip install -e .[test])")
    from peers_smtp import smtp_server

    with smtp_server(tmp_path / "smtp") as peer:
        yield peer


@pytest.fixture
def lifetime_hub(tmp_path: Path, smtp, hubs):
    """Factory: a real hub with the short-lifetime catalog and the mailer pointed at the test SMTP server."""
    need_proxy()
    started: list[HubProcess] = []

    def start(lifetimes=SHORT_LIFETIMES, extra: str = "", keep_servers: bool = False, **env: str) -> HubProcess:
        catalog = write_catalog(tmp_path, lifetimes)
        config = write_hub_config(tmp_path, catalog, smtp.hub_config() + extra)
        hub = HubProcess(tmp_path / "data", config_file=config,
                         extra_env={"VISA_KEEP_SERVERS": "1" if keep_servers else "0", **env})
        hubs.append(hub)
        started.append(hub)
        return hub.start()

    yield start
    stop_hubs(started)




@pytest.fixture
def time_limit_rule(slurm):
    """The one sudo rule a site gives the hub's user to raise time limits (an operator's right), nothing more.

    Needs a module-scoped ``slurm`` fixture (tests/peers_slurm.py) in the test module; yields scontrol's path.
    """
    scontrol = shutil.which("scontrol")
    rule = f"{slurm.hub_user} ALL=(root) NOPASSWD: {scontrol} ^update JobId=[0-9]+ TimeLimit=[0-9]+$\n"
    draft = slurm.root / "sudoers-time-limit"
    draft.write_text(rule)
    subprocess.run(["visudo", "-cf", str(draft)], check=True, capture_output=True)
    path = Path("/etc/sudoers.d") / f"visa-test-lifetime-{slurm.root.name.replace('.', '_')}"
    path.write_text(rule)
    path.chmod(0o440)
    yield scontrol
    path.unlink(missing_ok=True)
