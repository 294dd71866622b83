"""``GET {hub}/hub/api/visa/users/<name>/instances``: what the instance dashboard shows, in one call.

JupyterHub's own server model (``/hub/api/users/<name>``) says whether a server runs and what it was asked
(``user_options``), but not what the site's rules made of that request: the experiment's title, the flavour's
size, the image's title, when the instance expires — that is the spawner's session summary, kept in spawner
state, which JupyterHub shows only to holders of ``admin:server_state`` (with the backend's internals). So the
dashboard reads this handler instead: JupyterHub's server model of every instance (running, starting,
stopping, or stopped with its last session), plus ``session`` (from the summary, titles from the site catalog),
her quota and its use, and where a new instance starts. Access is JupyterHub's ``read:servers`` scope on the
user, so a person sees her own instances and an admin anyone's; cookie requests need the page's XSRF token.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.utils import url_escape_path, url_path_join
from tornado import web

from ..instances import describe, instance_name, last_session, running_instances, session_summary, taken_names
from ..people import Person
from ..policy import QuotaUsage, selectable_experiments
from ..site import VisaSite


def new_instance_conflict(user: Any) -> str | None:
    """Why her backend cannot start another instance now (a visa-hub spawner's ``instance_conflict``), or None."""
    for spawner in user.spawners.values():
        check = getattr(spawner, "instance_conflict", None)
        if callable(check):
            return check(for_new=True)
    return None


def _state(spawner: Any | None) -> str:
    if spawner is None:
        return "stopped"
    if spawner.pending == "spawn":
        return "starting"
    if spawner.pending == "stop":
        return "stopping"
    if spawner.ready:
        return "running"
    if spawner._failed:
        return "failed"
    return "stopped"


def _failure(spawner: Any | None) -> str | None:
    if spawner is None or not spawner._failed:
        return None
    exc = spawner._spawn_future.exception()
    return getattr(exc, "jupyterhub_message", None) or getattr(exc, "log_message", None) or str(exc)


def _refused(spawner: Any | None) -> bool:
    """Whether the last start of this server was refused by the site's rules (a 400: nothing ever ran)."""
    if spawner is None or not spawner._failed:
        return False
    exc = spawner._spawn_future.exception()
    return isinstance(exc, web.HTTPError) and exc.status_code == 400


def _shared_with(orm_spawner: Any) -> list[dict[str, str]]:
    """The people this server is shared with, and their role (visa_hub.sharing: the share's custom scopes)."""
    from ..sharing.roles import role_from_share

    return [{"name": share.user.name, "role": role_from_share(share.scopes) or "access"}
            for share in orm_spawner.shares if share.user is not None and not getattr(share, "expired", False)]


class InstancesAPIHandler(APIHandler):
    """A person's instances with their sessions, her quota, and the URL of a new instance."""

    @property
    def site(self) -> VisaSite:
        return VisaSite.instance(config=self.settings["config"], log=self.log)

    @needs_scope("read:servers")
    async def get(self, user_name: str) -> None:
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"No such user: {user_name}")
        catalog = self.site.catalog
        hub = self.hub.base_url
        instances = []
        for name, orm_spawner in sorted(user.orm_spawners.items()):
            spawner = user.spawners.get(name)  # (no [name]: that would create one)
            active = bool(spawner and spawner.active)
            summary = session_summary(spawner) if active else None
            last = last_session(orm_spawner)
            if not (active or last or (spawner and spawner._failed and not _refused(spawner))):
                continue  # a form opened but never submitted, or a request refused on the form: not an instance
            model = self.server_model(spawner if spawner is not None else orm_spawner, user=user)
            escaped = url_escape_path(name)
            instances.append({
                **model,
                "label": name or "default",
                "state": _state(spawner),
                "failure": _failure(spawner),
                "session": describe(summary or last, catalog) if (summary or last) else None,
                "members": [{"name": user.name, "role": "owner"}, *_shared_with(orm_spawner)],
                "links": {
                    "lab": url_path_join(model["url"], "lab"),
                    "desktop": url_path_join(model["url"], "lab") + "?visa-open=desktop",
                    "spawn": url_path_join(hub, "spawn", user.escaped_name, escaped),
                    "relaunch": url_path_join(hub, "visa/relaunch", user.escaped_name, escaped),
                    "stop": url_path_join(hub, "visa/stop", user.escaped_name, escaped),
                    "server_api": url_path_join(hub, "api/users", user.escaped_name, "servers", escaped),
                },
            })
        order = {"starting": 0, "running": 0, "stopping": 0, "failed": 1, "stopped": 2}
        instances.sort(key=lambda i: (order[i["state"]], i["name"]))

        person = await self._person(user)
        experiments = await self._experiments(person)
        taken = taken_names(user)
        running = running_instances(user, catalog)
        usage = QuotaUsage.of(catalog.quota_for(bool(person and person.is_staff)), running)
        new_instances = [
            {"code": e.code, "title": e.title, "instrument": e.instrument,
             "url": url_path_join(hub, "spawn", user.escaped_name, instance_name(e.code, taken))}
            for e in experiments
        ]
        self.write({
            "user": user.name,
            "now": self.site.now().isoformat(),
            "instances": instances,
            "quota": usage.to_dict(),
            "new_instances": new_instances,  # her open experiments, each with the form of a new instance
            "new_instance_conflict": new_instance_conflict(user),  # why the backend cannot start one now, if so
        })

    async def _person(self, user: Any) -> Person | None:
        auth_state = await user.get_auth_state()
        return Person.from_dict(auth_state["person"]) if auth_state and "person" in auth_state else None

    async def _experiments(self, person: Person | None) -> list:
        if person is None:
            return []
        site = await self.site.site_experiments() if person.is_staff else []
        return selectable_experiments(person, self.site.catalog, self.site.now(), site)


ROUTES = [(r"/api/visa/users/([^/]+)/instances", InstancesAPIHandler)]
