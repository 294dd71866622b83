"""User Office events from RabbitMQ, applied to the GraphQL client's cache (aio-pika, in the hub's loop).

user-office-core publishes on the durable fanout exchange ``user_office_backend.fanout`` (routing key
empty, the event name in the AMQP ``type`` property, a JSON payload); its scheduler publishes bookings on
``user_office_scheduler_backend.fanout``. visa-hub binds a private queue to both and applies:

- proposal events (``PROPOSAL_CREATED``/``UPDATED``/``SUBMITTED``/``ACCEPTED``/``DELETED``,
  ``PROPOSAL_STATUS_ACTION_EXECUTED``, ``PROPOSAL_INSTRUMENTS_SELECTED``): members, title, instruments;
- ``USER_UPDATED``/``USER_DELETED``, ``VISIT_CREATED``/``VISIT_DELETED``: re-read the people concerned;
- scheduler bookings (``startsAt``, ``endsAt``, ``localContactId``, ``instrumentId``, ``proposalPk``): dates.

Every change also marks the users concerned stale, so their next lookup asks the User Office again. A
malformed message is logged and dropped (acknowledged), never retried forever. Lost connection: aio-pika
reconnects; whatever happened meanwhile is unknown, so the whole cache is marked stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import urlsplit

from traitlets import Float, Unicode
from traitlets.config import LoggingConfigurable

from .cache import UserOfficeCache

PROPOSAL_EVENTS = frozenset({
    "PROPOSAL_CREATED", "PROPOSAL_UPDATED", "PROPOSAL_SUBMITTED", "PROPOSAL_ACCEPTED", "PROPOSAL_DELETED",
    "PROPOSAL_STATUS_ACTION_EXECUTED", "PROPOSAL_INSTRUMENTS_SELECTED", "PROPOSAL_STATUS_CHANGED_BY_WORKFLOW",
    "PROPOSAL_STATUS_CHANGED_BY_USER", "PROPOSAL_MANAGEMENT_DECISION_SUBMITTED",
})
USER_EVENTS = frozenset({"USER_UPDATED", "USER_DELETED"})
VISIT_EVENTS = frozenset({"VISIT_CREATED", "VISIT_DELETED"})


def safe_url(url: str) -> str:
    """An AMQP URL without its credentials, for the log."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class UserOfficeEvents(LoggingConfigurable):
    """Consumes the User Office's event exchanges and applies them to a :class:`UserOfficeCache`."""

    proposal_exchange = Unicode(
        "user_office_backend.fanout", config=True,
        help="Durable fanout exchange on which user-office-core publishes its events.",
    )
    scheduler_exchange = Unicode(
        "user_office_scheduler_backend.fanout", config=True,
        help="Durable fanout exchange on which the User Office scheduler publishes bookings. Empty: none.",
    )
    queue_name = Unicode(
        "", config=True,
        help="Queue to consume from. Empty (default): a private queue of this hub process, deleted when it "
             "stops (events while the hub is down are not needed: the cache starts empty).",
    )
    reconnect_delay = Float(5.0, config=True, help="Seconds between attempts to connect to RabbitMQ.")
    connect_timeout = Float(10.0, config=True, help="Seconds to wait for RabbitMQ to accept a connection.")

    def __init__(self, *, url: str, cache: UserOfficeCache, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url, self.cache = url, cache
        self._task: asyncio.Task | None = None
        self._connection: Any = None
        self.ready = asyncio.Event()

    # -- applying events (no I/O) -----------------------------------------------------------------------
    def handle(self, event: str, body: bytes | str) -> str:
        """Apply one message to the cache; a short description of what it did (or why it was ignored)."""
        try:
            payload = json.loads(body)
        except (TypeError, ValueError):
            return "ignored (body is not JSON)"
        if not isinstance(payload, dict):
            return "ignored (payload is not an object)"
        if event in PROPOSAL_EVENTS:
            return self.cache.apply_proposal_event(event, payload)
        if event in USER_EVENTS:
            return self.cache.apply_user_event(event, payload)
        if event in VISIT_EVENTS:
            return self.cache.apply_visit_event(event, payload)
        if "startsAt" in payload and "proposalPk" in payload:  # a scheduler booking, whatever its name
            return self.cache.apply_booking_event(event, payload)
        return "ignored (not an event visa-hub uses)"

    # -- the consumer -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start consuming in the running event loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="visa-hub user office events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None

    async def _run(self) -> None:
        import aio_pika

        where = safe_url(self.url)
        while True:
            try:
                connection = await aio_pika.connect_robust(self.url, timeout=self.connect_timeout,
                                                           client_properties={"connection_name": "visa-hub"})
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure to connect: retry, the hub goes on
                self.log.warning("User Office events: cannot connect to %s (%s); retrying in %g s. Until then "
                                 "changes apply after the cache TTL.", where, exc, self.reconnect_delay)
                await asyncio.sleep(self.reconnect_delay)
                continue
            self._connection = connection
            connection.reconnect_callbacks.add(self._reconnected)
            try:
                await self._consume(connection, aio_pika)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                self.log.warning("User Office events: subscribing on %s failed (%s); retrying in %g s",
                                 where, exc, self.reconnect_delay)
                with contextlib.suppress(Exception):
                    await connection.close()
                await asyncio.sleep(self.reconnect_delay)
                continue
            self.log.info("Listening to User Office events on %s (%s)", where,
                          ", ".join(e for e in (self.proposal_exchange, self.scheduler_exchange) if e))
            self.ready.set()
            await asyncio.Future()  # consume until cancelled; aio-pika reconnects by itself

    async def _consume(self, connection: Any, aio_pika: Any) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=50)
        if self.queue_name:
            queue = await channel.declare_queue(self.queue_name, durable=True)
        else:
            queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        for name in (self.proposal_exchange, self.scheduler_exchange):
            if name:
                exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT, durable=True)
                await queue.bind(exchange, routing_key="")
        await queue.consume(self._on_message)

    def _reconnected(self, *_args: Any) -> None:
        self.log.warning("User Office events: reconnected; events may have been missed, re-reading everyone")
        self.cache.invalidate_all()

    async def _on_message(self, message: Any) -> None:
        async with message.process(ignore_processed=True):
            event = message.type or ""
            try:
                outcome = self.handle(event, message.body)
            except Exception:  # a bug here must not stop the consumer
                self.log.exception("User Office event %s from %s could not be applied", event or "(untyped)",
                                   message.exchange or "?")
                return
            self.log.info("User Office event %s: %s", event or "(untyped)", outcome)
