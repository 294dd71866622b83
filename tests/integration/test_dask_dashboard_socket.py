"""The dashboard preload in a real distributed scheduler: off TCP, onto a Unix socket only its owner can open.

The multi-user proof (bob refused, through a hub and on the node) is in test_dask_isolation.py; this checks the
preload's own promises quickly, in this process: the TCP listener is gone, the
same dashboard answers on the socket, a live socket is never taken over, and closing the scheduler removes it.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from distributed import Scheduler

from visa_hub.dask.dashboard import MODULE, _claim, private_socket_dir

pytestmark = pytest.mark.integration


async def test_scheduler_dashboard_moves_from_tcp_to_a_private_socket(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    early = None
    async with Scheduler(dashboard_address="127.0.0.1:0", preload=[MODULE], port=0) as scheduler:
        port = scheduler.http_server.port
        path = tmp_path / ".visa" / "dask" / "run" / f"{port}.sock"
        assert path.is_socket() and path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
        assert scheduler.identity()["services"]["dashboard"] == port  # what dashboard_link shows
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(path))) as client:
            status = await client.get("http://localhost/status")
            plots = await client.get("http://localhost/individual-plots.json")
        assert status.status_code == 200 and "Dask" in status.text
        assert plots.status_code == 200 and plots.json()
        early = path
    assert early is not None and not early.exists()  # removed when the scheduler closed


def test_a_live_dashboard_socket_is_never_taken_over(tmp_path: Path):
    directory = private_socket_dir(tmp_path)
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(directory / "4242.sock"))
    live.listen()
    try:
        number, path = _claim(directory, 4242)
        assert number != 4242 and path == directory / f"{number}.sock" and not path.exists()
    finally:
        live.close()
    assert _claim(directory, 4242) == (4242, directory / "4242.sock")  # a stale file is replaced


def test_the_socket_directory_must_be_this_users(tmp_path: Path):
    run = tmp_path / ".visa" / "dask" / "run"
    run.parent.mkdir(parents=True)
    run.symlink_to(tmp_path)  # e.g. planted to make her serve her dashboard somewhere else
    with pytest.raises(OSError, match="is not a directory of this user"):
        private_socket_dir(tmp_path)


async def test_isolation_a_dashboard_is_proxied_only_by_the_instance_that_started_it(tmp_path: Path, monkeypatch):
    """Her instances share her home (and its socket directory): the ODIN instance's server, which she may share with
    its collaborators, does not serve the dashboard of a scheduler started in her LOKI instance."""
    import asyncio

    from jupyter_server_process import launch_jupyter_server

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "loki-2026-042")  # as in a kernel of that instance
    servers = {}
    for name in ("loki-2026-042", "odin-2026-007"):
        (tmp_path / name).mkdir()
        servers[name] = launch_jupyter_server(tmp_path / name, root=home,
                                              env={"HOME": str(home), "JUPYTERHUB_SERVER_NAME": name})
    try:
        for server in servers.values():
            await asyncio.to_thread(server.wait_until_up, 60)
        async with Scheduler(dashboard_address="127.0.0.1:0", preload=[MODULE], port=0) as scheduler:
            port = scheduler.http_server.port
            path = home / ".visa" / "dask" / "run" / f"{port}.sock"
            assert (path.parent / f"{port}.instance").read_text() == "loki-2026-042"
            answers = {name: await asyncio.to_thread(server.get, f"visa-dask/{port}/status")
                       for name, server in servers.items()}
            assert answers["loki-2026-042"].status_code == 200 and "Dask" in answers["loki-2026-042"].text
            assert answers["odin-2026-007"].status_code == 404 and "Dask" not in answers["odin-2026-007"].text
        assert not (path.parent / f"{port}.instance").exists()  # removed with the socket
    finally:
        for server in servers.values():
            server.stop()
