"""A private RabbitMQ broker for tests: Debian's ``rabbitmq-server`` on free loopback ports.

    with rabbitmq_server() as broker:
        broker.url                      # amqp://guest:guest@127.0.0.1:<port>/
        broker.publish("user_office_backend.fanout", "PROPOSAL_UPDATED", {...})

Everything lives in a temporary directory (node name, mnesia, logs, Erlang cookie) with its own epmd on its
own port, so it never meets a system broker. Installed by ``scripts/install-useroffice-peers.sh``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
INSTALL_HINT = "rabbitmq-server not installed (run scripts/install-useroffice-peers.sh)"


def rabbitmq_bin() -> Path | None:
    return RABBITMQ_SERVER if RABBITMQ_SERVER.exists() and shutil.which("epmd") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _speaks_amqp(port: int) -> bool:
    """True once the broker answers the AMQP 0-9-1 protocol header with Connection.Start."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return s.recv(1) == b"\x01"  # a method frame
    except OSError:
        return False


@dataclass
class RabbitMQ:
    """A running private broker."""

    port: int
    process: subprocess.Popen
    directory: Path

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in (self.directory / "log").glob("*.log"))

    def publish(self, exchange: str, event_type: str, payload: Any, *, timeout: float = 10) -> None:
        """Publish one message as user-office-core does: durable fanout exchange, empty routing key,
        the event name in the ``type`` property, a JSON body. Runs in its own thread and loop, so it
        works from any test (also next to Playwright's event loop)."""
        error: list[BaseException] = []

        async def send() -> None:
            import aio_pika

            connection = await aio_pika.connect(self.url, timeout=timeout)
            async with connection:
                channel = await connection.channel()
                target = await channel.declare_exchange(exchange, aio_pika.ExchangeType.FANOUT, durable=True)
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                await target.publish(
                    aio_pika.Message(body, type=event_type, content_type="application/json",
                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key="",
                )

        def run() -> None:
            try:
                asyncio.run(send())
            except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                error.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout + 5)
        if error:
            raise error[0]


@contextlib.contextmanager
def rabbitmq_server(timeout: float = 90) -> Iterator[RabbitMQ]:
    """Start a private broker (and its epmd) on free loopback ports; stop both afterwards."""
    server = rabbitmq_bin()
    if server is None:
        raise RuntimeError(INSTALL_HINT)
    directory = Path(tempfile.mkdtemp(prefix="visa-hub-rabbitmq-"))
    port, dist_port, epmd_port = _free_port(), _free_port(), _free_port()
    (directory / "enabled_plugins").write_text("[].\n")
    (directory / "rabbitmq-env.conf").write_text("")
    (directory / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\n"
        "log.console = false\nlog.file.level = info\n"
    )
    env = {
        **os.environ,
        "HOME": str(directory),  # the Erlang cookie goes here
        "RABBITMQ_NODENAME": f"visa-test-{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
        "RABBITMQ_LOG_BASE": str(directory / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq"),
        "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
        "RABBITMQ_PID_FILE": str(directory / "rabbitmq.pid"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    output = (directory / "server.out").open("wb")
    # our own epmd, in the foreground, so that we stop exactly the one we started
    epmd = subprocess.Popen([shutil.which("epmd") or "epmd", "-port", str(epmd_port), "-address", "127.0.0.1"],
                            env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    process = subprocess.Popen([str(server)], cwd=directory, env=env, stdout=output, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    broker = RabbitMQ(port, process, directory)
    try:
        deadline = time.monotonic() + timeout
        while not _speaks_amqp(port):
            if process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {process.returncode}:\n"
                                   f"{(directory / 'server.out').read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"rabbitmq-server not ready after {timeout:g} s:\n{broker.log_text()[-3000:]}")
            time.sleep(0.3)
        yield broker
    finally:
        for child in (process, epmd):
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
                try:
                    child.wait(20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child.pid, signal.SIGKILL)
                    child.wait()
        output.close()
        if os.environ.get("VISA_HUB_KEEP_PEER_LOGS") != "1":
            shutil.rmtree(directory, ignore_errors=True)
