"""A clean hub restart (SIGTERM) tells the person whose request it cuts off that the hub is restarting.

JupyterHub cancels every request still in flight when it stops, and tornado answers them with a bare 500 — the soak
(test_scale_openstack_soak) met one: a spawn request answered "Internal Server Error" while the hub restarted.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx

from hubtest import UserSession, wait_until

#: visa-hub's config with a spawn that waits a few seconds before it starts (a busy cloud), so that the spawn
#: request is still waiting for it (JupyterHub's slow_spawn_timeout) when the hub is told to stop
SLOW_SPAWN_CONFIG = """
import asyncio
from visa_hub.hubconfig import configure

c = get_config()
configure(c)


async def busy_cloud(spawner):
    spawner.log.info("test: the cloud is busy")
    await asyncio.sleep(8)

c.Spawner.pre_spawn_hook = busy_cloud
"""


def test_scale_clean_restart_answers_a_spawn_in_flight_with_the_hub_is_restarting(tmp_path: Path,
                                                                                   start_hub) -> None:
    config = tmp_path / "slow_spawn_config.py"
    config.write_text(SLOW_SPAWN_CONFIG)
    hub = start_hub(config_file=config)
    alice = UserSession(hub, "alice")
    assert alice.login().status_code == 200
    # straight to the hub's own port, as a proxy in front keeps its connection to the hub
    direct = httpx.Client(base_url=f"http://127.0.0.1:{hub.api_port}", cookies=alice.http.cookies, timeout=60)
    answer: dict[str, httpx.Response] = {}
    request = threading.Thread(target=lambda: answer.setdefault("spawn", direct.post(
        "/hub/api/users/alice/server", json={"experiment": "LOKI-2026-042"}, headers=alice._hub_xsrf())))
    request.start()
    wait_until(lambda: "test: the cloud is busy" in hub.log_text(), 30, "the spawn to wait for the cloud")

    hub.proc.send_signal(signal.SIGTERM)
    request.join(60)
    hub.proc.wait(60)

    response = answer["spawn"]
    assert response.status_code == 503, (response.status_code, response.text)
    assert "The hub is restarting" in response.json()["message"]
    assert "Internal Server Error" not in response.text
    assert int(response.headers["Retry-After"]) > 0


def test_scale_a_500_outside_a_shutdown_stays_a_500() -> None:
    """The notice only speaks for a stopping hub: other errors are left as they are."""
    from tornado.httputil import HTTPHeaders

    from visa_hub import restart

    headers = HTTPHeaders({"Content-Type": "application/json", "Content-Length": "10"})
    notice = restart.RestartNotice(request=None)  # type: ignore[arg-type]
    assert notice.transform_first_chunk(500, headers, b'{"x": 500}', True)[0] == 500
    assert not restart.stopping()
