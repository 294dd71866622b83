"""Authorizers for the desktop tests, loaded by a real ``jupyter server`` (``PYTHONPATH`` holds ``tests/``)."""

from __future__ import annotations

import asyncio

from jupyter_server.auth.authorizer import Authorizer


class AsyncViewOnlyAuthorizer(Authorizer):
    """A guest's sharing policy, answered asynchronously: no ``write`` on the desktop, everything else allowed."""

    async def is_authorized(self, handler, user, action: str, resource: str) -> bool:
        await asyncio.sleep(0)  # a real policy would ask the hub's sessions service here
        return not (resource == "visa-desktop" and action == "write")
