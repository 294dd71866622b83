"""Experiment-aware spawning shared by every backend (local, OpenStack, Slurm).

The mixin builds the spawn form from the site catalog × the user's experiments, pre-filled with her last
choice; checks every request (form or REST API) with the policy on the server; turns the resulting
:class:`~visa_hub.policy.SessionPlan` into environment, resource limits and spawner state; and reports
progress. Backends only create and destroy instances.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jinja2
from jupyterhub.utils import maybe_future
from tornado import web
from traitlets import default
from traitlets.config import LoggingConfigurable

from visa_hub import metrics
from visa_hub.instances import LAST_STATE_KEY, STATE_KEY, instance_name, running_instances, taken_names
from visa_hub.jupyter_defaults import jupyter_config_path
from visa_hub.people import Person
from visa_hub.policy import (
    PolicyError,
    QuotaUsage,
    SessionPlan,
    SpawnRequest,
    plan_session,
    selectable_experiments,
    upcoming_experiments,
)
from visa_hub.site import VisaSite

from .progress import ProgressLog

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)

FORM_FIELDS = ("experiment", "flavour", "image", "lifetime_hours")


def policy_refusal(error: PolicyError) -> web.HTTPError:
    """A policy refusal as a 400 whose message the spawn form (or API client) shows as is."""
    http_error = web.HTTPError(400, "%s", error.message)
    http_error.jupyterhub_message = error.message  # type: ignore[attr-defined]
    return http_error


class ThisMachineSingleuser(LoggingConfigurable):
    """Mixin: run ``jupyterhub-singleuser`` from the hub's own Python environment (local instances only: VMs and
    compute nodes run the instance environment, see scripts/provision-instance.sh)."""

    @default("cmd")
    def _cmd_default(self) -> list[str]:
        # absolute: JupyterHub no longer passes PATH to the server by default
        return [str(Path(sys.executable).with_name("jupyterhub-singleuser"))]

    @default("args")
    def _args_default(self) -> list[str]:
        return ["--allow-root"] if os.geteuid() == 0 else []

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        # visa-hub's JupyterLab defaults (e.g. no news feed: instances have no internet), before the user's own
        env["JUPYTER_CONFIG_PATH"] = jupyter_config_path(env)
        return env


class VisaSpawnerMixin(LoggingConfigurable):
    """Mixin for :class:`jupyterhub.spawner.Spawner` backends; put it first in the bases."""

    session_plan: SessionPlan | None = None
    _plan_summary: dict[str, Any] | None = None
    _last_summary: dict[str, Any] | None = None  # the last session that started; kept when it stops

    @property
    def site(self) -> VisaSite:
        return VisaSite.instance(config=self.config, log=self.log)

    @property
    def progress_log(self) -> ProgressLog:
        if getattr(self, "_progress_log", None) is None:
            self._progress_log = ProgressLog()
        return self._progress_log

    # -- who is asking -----------------------------------------------------------------------------
    async def person(self) -> Person:
        auth_state = await self.user.get_auth_state()
        if not auth_state or "person" not in auth_state:
            raise web.HTTPError(403, "Your login has no experiment information. Please log out and in again.")
        return Person.from_dict(auth_state["person"])

    async def _site_experiments(self, person: Person) -> list:
        return await self.site.site_experiments() if person.is_staff else []

    # -- the form ----------------------------------------------------------------------------------
    @default("options_form")
    def _options_form_default(self):
        return lambda spawner: spawner.render_options_form()

    async def render_options_form(self) -> str:
        """HTML of the spawn form: her experiments, the flavours and images each allows, her last choice.

        Also what her quota leaves, the experiments that open later, and per experiment the name a new instance
        gets (the form's script sends a new instance to that name when she picks the experiment). The experiment
        chosen first is this instance's own (its last options), else the one whose new-instance name the form
        opened for (the dashboard's "New instance" of an experiment), else her first. Her last options per
        experiment come from the sessions service: the form's script asks it (``last_options_url``).
        """
        person = await self.person()
        catalog, now = self.site.catalog, self.site.now()
        experiments = selectable_experiments(person, catalog, now, await self._site_experiments(person))
        last = dict(self.user_options or {})
        taken = taken_names(self.user)
        new_names = {e.code: instance_name(e.code, taken) for e in experiments}
        choice = last.get("experiment")
        if choice not in new_names:
            named = [code for code, name in new_names.items() if name == self.name]
            choice = named[0] if named else (experiments[0].code if experiments else None)
        running = running_instances(self.user, catalog)
        return _templates.get_template("spawn_form.html").render(
            person=person,
            experiments=experiments,
            upcoming=upcoming_experiments(person, catalog, now),
            catalog=catalog,
            rules={e.code: catalog.instrument(e.instrument) for e in experiments},
            choice=choice,
            last=last,
            now=now,
            usage=QuotaUsage.of(catalog.quota_for(person.is_staff), running),
            conflict=self.instance_conflict(),
            running=running,
            new_names=new_names,
            fresh_names=sorted(set(self.user.orm_spawners) - taken - {""}),
            spawn_base=f"{self.hub.base_url}spawn/{self.user.escaped_name}/",
            home_url=f"{self.hub.base_url}home",
            last_options_url=self.last_options_url(),
        )

    def last_options_url(self) -> str:
        """Where the form's script reads her last options per experiment: the sessions service's
        ``api/last-options`` on the hub's own origin (her login cookie), or "" without the service."""
        service = urlparse(str(self.environment.get("VISA_SESSIONS_URL") or "")).path
        return f"{service.rstrip('/')}/api/last-options" if service else ""

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        """Form fields → ``user_options`` (strings kept as typed; the policy validates them)."""
        options = {}
        for name in FORM_FIELDS:
            value = (formdata.get(name) or [""])[0].strip()
            if value:
                options[name] = value
        return options

    async def run_options_from_form(self, form_data: dict[str, list[str]]) -> dict[str, Any]:
        """Form → ``user_options``, checked by the policy at once.

        A refusal here comes back as the form with her choices and the policy's message. Checked only later (in
        ``apply_user_options``), a refusal that takes JupyterHub more than a second to see (a busy hub, a slow
        User Office) lands on the "start failed" page instead of the form.
        """
        options = await maybe_future(super().run_options_from_form(form_data))
        await self.make_plan(options)
        return options

    # -- the policy, server side -------------------------------------------------------------------
    async def make_plan(self, user_options: dict[str, Any]) -> SessionPlan:
        """Check a request against the site rules; a refusal is an HTTP 400 with the policy's message."""
        person = await self.person()
        site_experiments = await self._site_experiments(person)
        catalog = self.site.catalog
        # no await from here to the caller's use of the plan: two spawns at once cannot both take the last slot
        running = running_instances(self.user, catalog, besides=self.name)
        try:
            request = SpawnRequest.from_options(user_options or {})
            plan = plan_session(person, request, catalog, self.site.now(), site_experiments, running)
            conflict = self.instance_conflict()
            if conflict:
                raise PolicyError(conflict)
        except PolicyError as exc:
            self.log.info("Spawn of %s refused by policy: %s", self._log_name, exc.message)
            raise metrics.counted(policy_refusal(exc), self, "policy") from None
        self.log.info(
            "Session plan for %s: experiment %s on %s, flavour %s, image %s, %g h",
            self._log_name, plan.experiment.code, plan.instrument.name, plan.flavour.name, plan.image.name,
            plan.lifetime_hours,
        )
        return plan

    def instance_conflict(self, for_new: bool = False) -> str | None:
        """Why the backend cannot start this instance (``for_new``: a new one) while her others run, or ``None``:
        e.g. a home that only one instance at a time can use. Checked with the policy, before anything is
        created, and shown on the spawn form and the dashboard. Must not await (see :meth:`make_plan`)."""
        return None

    @default("apply_user_options")
    def _apply_user_options_default(self):
        async def apply(spawner, user_options):
            spawner.session_plan = await spawner.make_plan(user_options)
            spawner._plan_summary = spawner.session_plan.summary()  # counts against her quota from now on

        return apply

    async def prepare_session(self) -> SessionPlan:
        """Call first in a backend's ``start``: (re)check the plan and apply its limits."""
        self.progress_log.emit(5, "Checking your experiment against the site's rules")
        # normally planned by apply_user_options for this spawn; plan here if an operator replaced that hook
        plan = self.session_plan or await self.make_plan(self.user_options)
        self.session_plan = plan
        self._plan_summary = self._last_summary = plan.summary()
        self._owner = await self.owner_facts()
        self.cpu_limit = float(plan.flavour.cpus)
        self.mem_limit = int(plan.flavour.memory_gb * 1024**3)
        self.progress_log.emit(
            15,
            f"Experiment {plan.experiment.code} on {plan.instrument.name}: {plan.flavour.label}, "
            f"image {plan.image.title}, for {plan.lifetime_hours:g} hours",
        )
        return plan

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        if self.session_plan is not None:
            env.update(self.session_plan.environment)
        return env

    @default("default_url")
    def _default_url_default(self) -> str:
        return "/lab"

    # -- progress and state ------------------------------------------------------------------------
    async def progress(self):
        async for event in self.progress_log.follow():
            yield event

    async def owner_facts(self) -> dict[str, Any]:
        """Who owns the instance, for the sessions service (membership checks and e-mail): kept in state."""
        person = await self.person()
        return {"name": person.name, "email": person.email, "subject": person.subject, "staff": person.is_staff}

    _owner: dict[str, Any] | None = None

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self._plan_summary:
            state[STATE_KEY] = self._plan_summary
        if self._last_summary:
            state[LAST_STATE_KEY] = self._last_summary
        if self._owner:
            state["visa_owner"] = self._owner
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self._plan_summary = state.get(STATE_KEY)
        self._last_summary = state.get(LAST_STATE_KEY, self._last_summary)
        self._owner = state.get("visa_owner")

    def clear_state(self) -> None:
        """Forget the running session (the last one stays, so the stopped instance keeps its card)."""
        super().clear_state()
        self.session_plan = None
        self._plan_summary = None
        self._owner = None
        self._progress_log = None

    @property
    def session_summary(self) -> dict[str, Any] | None:
        """The running session (experiment, flavour, expiry), also after a hub restart."""
        return self._plan_summary

    @property
    def expires_at(self) -> dt.datetime | None:
        if not self._plan_summary:
            return None
        return dt.datetime.fromisoformat(self._plan_summary["expires_at"])
