"""Relaunch and stop an instance from a confirmation page, with JupyterHub's own spawn and stop machinery.

``GET`` shows what will happen (instance, experiment, the settings a relaunch reuses); ``POST`` (with the page's
``_xsrf``) does it:

- relaunch: stop the server if it runs, then ``spawn_single_user`` with the ``user_options`` JupyterHub stored
  for it (the same ones the spawn form or REST API gave), then redirect to the hub's progress page
  (``/hub/spawn-pending/<user>/<server>``). A stop that takes long (a VM being deleted) shows a
  "stopping…" page that refreshes itself until the new start has begun.
- stop: stop the server, then redirect to ``?next=`` (a hub-local URL) or the hub's home page.

Both need the ``servers`` scope on that very server (``servers!server=<user>/<name>``): the owner has it, an
admin has it; a collaborator with ``access:servers`` (sharing) or any other user gets 403.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import has_scope
from jupyterhub.utils import url_escape_path, url_path_join
from tornado import web

from .settings import experiment_code, instance_label, settings_rows

TEMPLATE = "visa_server_action.html"
#: How long a relaunch POST waits for the old server to stop before it shows the "stopping…" page instead.
STOP_WAIT_SECONDS = 15.0
#: The "stopping…" page reloads itself this often (seconds).
REFRESH_SECONDS = 2
#: A finished relaunch sends its page to the progress page for this long (seconds); then the page asks again.
FORGET_SECONDS = 10


def action_url(hub_prefix: str, action: str, user: str, server_name: str = "") -> str:
    """``{hub_prefix}visa/<action>/<user>/<server_name>``; ``server_name`` is empty for the default server."""
    return f"{hub_prefix.rstrip('/')}/visa/{action}/{quote(user, safe='')}/{quote(server_name, safe='')}"


def _sentence(text: str) -> str:
    """``text`` with a capital first letter (and nothing else changed, unlike ``str.capitalize``)."""
    return text[:1].upper() + text[1:]


@dataclass
class Relaunch:
    """One relaunch in flight: the task doing it, and whether the new start has begun."""

    task: asyncio.Task | None = None
    starting: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None


class ServerActionHandler(BaseHandler):
    """Common part: find the server, check who asks, render the confirmation page."""

    action = ""

    # -- lookup and permission ----------------------------------------------------------------------
    def _find(self, user_name: str, server_name: str) -> tuple[Any, Any]:
        """The hub's user and the server's ORM record; 404 when either does not exist, 403 when not hers."""
        current = self.current_user
        if current is None:
            raise web.HTTPError(403, "Log in first.")
        scope = f"servers!server={user_name}/{server_name}"
        if not has_scope(scope, self.parsed_scopes, db=self.db):
            self.log.warning("visa-hub: %s may not %s %s/%s", current.name, self.action, user_name, server_name)
            raise web.HTTPError(403, f"Only the owner of this instance (or an admin) may {self.action} it.")
        user = self.find_user(user_name)
        if user is None or server_name not in user.orm_spawners:
            raise web.HTTPError(404, f"{user_name} has no instance named {server_name!r}.")
        return user, user.orm_spawners[server_name]

    def _look_up(self, user_name: str, server_name: str | None) -> tuple[Any, str, dict[str, Any]]:
        """The hub's user, the server's name (``""`` for the default one) and the page's description of it."""
        server_name = server_name or ""
        user, orm_spawner = self._find(user_name, server_name)
        return user, server_name, self._describe(user, server_name, orm_spawner)

    def _spawner(self, user: Any, server_name: str) -> Any:
        return user.get_spawner(server_name, replace_failed=True)

    # -- the page -----------------------------------------------------------------------------------
    def _describe(self, user: Any, server_name: str, orm_spawner: Any) -> dict[str, Any]:
        spawner = self._spawner(user, server_name)
        options = dict(orm_spawner.user_options or {})
        summary = getattr(spawner, "session_summary", None)
        label = instance_label(server_name, getattr(orm_spawner, "display_name", None))
        if user.name != self.current_user.name:  # an admin acting for her
            label = label.replace("your instance", "instance") if not server_name else label
            label = f"{user.name}’s {label}"
        return {
            "owner": user.name,
            "server_name": server_name,
            "instance": label,
            "experiment": experiment_code(options, summary),
            "rows": settings_rows(options, summary),
            "options": options,
            "running": spawner.active,
            "pending": spawner.pending,
            "home_url": url_path_join(self.hub.base_url, "home"),
            "lab_url": user.server_url(server_name) if spawner.ready else None,
            "spawn_url": url_path_join(self.hub.base_url, "spawn", user.escaped_name, url_escape_path(server_name)),
            "pending_url": url_path_join(
                self.hub.base_url, "spawn-pending", user.escaped_name, url_escape_path(server_name)),
        }

    async def _render(self, status: int = 200, **ns: Any) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        ns.setdefault("message", None)
        ns.setdefault("error", None)
        ns.setdefault("refresh", None)
        ns.setdefault("can_confirm", False)
        self.finish(await self.render_template(TEMPLATE, action=self.action, **ns))

    @property
    def relaunches(self) -> dict[tuple[str, str], Relaunch]:
        return self.settings.setdefault("visa_relaunches", {})


class RelaunchHandler(ServerActionHandler):
    """``{hub}/hub/visa/relaunch/<user>/<server_name>``: stop this instance and start it with the same settings."""

    action = "relaunch"

    @web.authenticated
    async def get(self, user_name: str, server_name: str | None = "") -> None:
        user, server_name, info = self._look_up(user_name, server_name)
        relaunch = self.relaunches.get((user.name, server_name))
        if relaunch is not None and relaunch.task is not None:
            if relaunch.error:
                await self._render(500, error=relaunch.error, **info)
                return
            spawner = self._spawner(user, server_name)
            if spawner.pending == "spawn" or spawner.ready or relaunch.task.done():
                self.redirect(info["pending_url"])  # the hub's progress page takes over
                return
            doing = "Starting" if relaunch.starting.is_set() else "Stopping"
            await self._render(message=f"{doing} {info['instance']}… it starts again with the same settings.",
                               refresh=REFRESH_SECONDS, **info)
            return
        problem = self._why_not(info)
        await self._render(409 if problem else 200, error=problem, can_confirm=problem is None, **info)

    @web.authenticated
    async def post(self, user_name: str, server_name: str | None = "") -> None:
        user, server_name, info = self._look_up(user_name, server_name)
        key = (user.name, server_name)
        running = self.relaunches.get(key)
        if running is not None and running.task is not None and not running.task.done():
            self.redirect(self.request.path)  # already under way: show its state
            return
        problem = self._why_not(info)
        if problem:
            await self._render(409, error=problem, **info)
            return
        self.log.info("visa-hub: %s relaunches %s/%s with %s", self.current_user.name, user.name, server_name,
                      sorted(info["options"]))
        relaunch = Relaunch()
        self.relaunches[key] = relaunch
        relaunch.task = asyncio.ensure_future(self._relaunch(user, server_name, info["options"], relaunch))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._started_or_done(relaunch)), STOP_WAIT_SECONDS)
        if relaunch.error:
            await self._render(500, error=relaunch.error, **info)
            return
        # our page: the hub's progress page once the start has begun, else "stopping…" until it has
        self.redirect(self.request.path)

    @staticmethod
    async def _started_or_done(relaunch: Relaunch) -> None:
        waiter = asyncio.ensure_future(relaunch.starting.wait())
        await asyncio.wait([waiter, relaunch.task], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    def _why_not(self, info: dict[str, Any]) -> str | None:
        if not info["options"]:
            return (f"There are no recorded settings for {info['instance']}: start it from the spawn form "
                    "instead.")
        if info["pending"]:
            doing = {"spawn": "starting", "stop": "stopping"}.get(info["pending"], "busy")
            return (f"{_sentence(info['instance'])} is {doing} just now. "
                    "Try again once it has finished.")
        return None

    async def _relaunch(self, user: Any, server_name: str, options: dict[str, Any], relaunch: Relaunch) -> None:
        """Stop (if running), then start with ``options``; errors are kept for the page, never lost."""
        try:
            spawner = self._spawner(user, server_name)
            if spawner.active:
                stopping = await self.stop_single_user(user, server_name)
                await stopping
            spawner = self._spawner(user, server_name)
            if spawner.active:
                raise RuntimeError("the instance did not stop")
            relaunch.starting.set()
            await self.spawn_single_user(user, server_name, options=dict(options))
        except Exception as exc:  # shown on the page and in the log
            reason = getattr(exc, "jupyterhub_message", None) or getattr(exc, "log_message", None) or str(exc)
            relaunch.error = f"The relaunch failed: {reason}"
            self.log.exception("visa-hub: relaunch of %s/%s failed", user.name, server_name)
        finally:
            relaunch.starting.set()
            # forget it once the hub's progress page tells the story (an error stays on our page for a minute);
            # from then on the page asks again, for the next relaunch
            relaunches, key = self.relaunches, (user.name, server_name)

            def forget() -> None:
                if relaunches.get(key) is relaunch:
                    del relaunches[key]

            asyncio.get_running_loop().call_later(60 if relaunch.error else FORGET_SECONDS, forget)


class StopHandler(ServerActionHandler):
    """``{hub}/hub/visa/stop/<user>/<server_name>``: stop this instance (files stay in the persistent home)."""

    action = "stop"

    @web.authenticated
    async def get(self, user_name: str, server_name: str | None = "") -> None:
        _, _, info = self._look_up(user_name, server_name)
        if info["pending"] == "stop":
            await self._render(message=f"{_sentence(info['instance'])} is stopping…", refresh=REFRESH_SECONDS,
                               **info)
            return
        if not info["running"]:
            await self._render(message=f"{_sentence(info['instance'])} is not running.", **info)
            return
        if info["pending"]:
            await self._render(409, error=f"{_sentence(info['instance'])} is still starting. Stop it once it "
                                          "has started, from its page or the hub's home page.", **info)
            return
        await self._render(can_confirm=True, **info)

    @web.authenticated
    async def post(self, user_name: str, server_name: str | None = "") -> None:
        user, server_name, info = self._look_up(user_name, server_name)
        spawner = self._spawner(user, server_name)
        if spawner.pending == "spawn":
            await self._render(409, error=f"{_sentence(info['instance'])} is still starting. Stop it once it "
                                          "has started.", **info)
            return
        if spawner.active and not spawner.pending:
            self.log.info("visa-hub: %s stops %s/%s", self.current_user.name, user.name, server_name)
            await self.stop_single_user(user, server_name)  # waits up to slow_stop_timeout, then goes on
        if self._spawner(user, server_name).pending == "stop":
            self.redirect(self.request.path)  # our page, refreshing until it has stopped
            return
        self.redirect(self.get_next_url(default=info["home_url"]))


#: Routes for ``c.JupyterHub.extra_handlers`` (JupyterHub prefixes them with the hub's URL).
ACTION_ROUTES = [
    (r"/visa/relaunch/([^/]+)(?:/([^/]*))?", RelaunchHandler),
    (r"/visa/stop/([^/]+)(?:/([^/]*))?", StopHandler),
]
