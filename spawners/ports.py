"""Ports for instances on this machine, never handed to two instances at once.

JupyterHub's local spawners pick a port by binding port 0 and closing the socket again; the instance binds it
a moment later. Two spawns in that moment can be handed the same port: the first instance gets it, the
second cannot bind, and the hub, checking that port, takes the first person's server for the second's
(seen under load: one in about 500 spawns at 50 at once). :class:`PortClaims` remembers the ports this hub
has handed out until their instance stops, and never hands one out twice.
"""

from __future__ import annotations

from collections.abc import Callable

from jupyterhub.utils import random_port


class PortClaims:
    """The ports this hub's local instances hold, by instance."""

    def __init__(self, pick: Callable[[], int] = random_port, attempts: int = 100):
        self._pick, self._attempts = pick, attempts
        self._holders: dict[int, str] = {}

    def claim(self, holder: str) -> int:
        """A free port no other instance of this hub holds, now held by ``holder`` (``user/server``)."""
        for _ in range(self._attempts):
            port = self._pick()
            if self._holders.setdefault(port, holder) == holder:
                return port
        raise RuntimeError(f"no free port for {holder} after {self._attempts} attempts")

    def release(self, holder: str, port: int) -> None:
        """``holder``'s instance stopped: its port may be handed out again."""
        if self._holders.get(port) == holder:
            del self._holders[port]

    def holder(self, port: int) -> str | None:
        return self._holders.get(port)


#: The claims of every local instance of this hub process.
LOCAL_PORTS = PortClaims()
