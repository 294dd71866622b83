"""The sessions service's work: follow running instances, warn, stop, extend, answer requests.

One :class:`Sessions` object per service process. :meth:`Sessions.tick` runs every ``poll_interval`` seconds
(see :mod:`.scheduler`): one hub API call lists every running server; each is matched with its row in the
database (created the first time it is seen, from the session plan the spawner keeps in its state), the pure
rules of :mod:`.lifetime` decide, and warnings, stops and e-mails follow. Everything that happened is in
the database, so a restarted service (or hub) carries on where it was: a warning is never sent twice and a
stop is never late by more than one tick.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session
from traitlets.config import LoggingConfigurable

from ..catalog import Catalog
from ..lifetimes import LifetimeLimits
from ..useroffice import UserOffice, UserOfficeUnavailable
from . import db as models
from .backends import ExpiryRefused, SlurmLimits
from .hubapi import HubAPI, RunningServer
from .lifetime import (
    EXPIRY,
    INACTIVITY,
    MEMBERSHIP,
    Decision,
    InstanceFacts,
    decide,
    expiry_thresholds,
    extension_outcome,
    format_hours,
)
from .mailer import VisaMailer

SERVICE_ACTOR = "visa-sessions"
STOP_TEXT = {
    "expired": "it reached the end of its lifetime",
    "inactive": "nobody used it for the inactivity timeout",
    "membership": "you are no longer a member of its experiment",
    "admin": "an administrator stopped it",
}


class SessionsError(Exception):
    """A request the rules refuse: ``status`` is the HTTP status, the message is for a person."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def time_left(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} seconds"
    return format_hours(seconds / 3600) if seconds >= 3600 else f"{round(seconds / 60)} minutes"


class Sessions(LoggingConfigurable):
    """Lifetimes and extension requests of every instance of the hub."""

    def __init__(self, *, db: Session, hub: HubAPI, mailer: VisaMailer, slurm: SlurmLimits,
                 catalog: Callable[[], Catalog], user_office: UserOffice | None, public_url: str,
                 service_prefix: str, admin_emails: list[str], clock: Callable[[], dt.datetime] | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.db, self.hub, self.mailer, self.slurm = db, hub, mailer, slurm
        self.catalog, self.user_office = catalog, user_office
        self.public_url = public_url.rstrip("/")
        self.service_prefix = service_prefix
        self.admin_emails = admin_emails
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.hub_reachable = False

    # ------------------------------------------------------------------ facts and rules
    def limits(self, inst: models.Instance) -> LifetimeLimits:
        catalog = self.catalog()
        rule = catalog.instrument(inst.instrument)
        if rule is None:  # the catalog no longer knows the instrument: the site-wide rules
            return catalog.lifetimes.resolve(inst.instrument, inst.flavour, inst.image, inst.staff)
        return catalog.lifetime_limits(rule, inst.flavour, inst.image, inst.staff)

    @staticmethod
    def facts(inst: models.Instance) -> InstanceFacts:
        return InstanceFacts(started_at=inst.started, expires_at=inst.expires_at, last_activity=inst.last_activity,
                             member=inst.membership_lost_at is None, membership_lost_at=inst.membership_lost_at)

    def decision(self, inst: models.Instance, now: dt.datetime | None = None) -> Decision:
        return decide(self.facts(inst), self.limits(inst), inst.sent(), now or self.clock())

    # ------------------------------------------------------------------ links
    def hub_url(self, path: str = "") -> str:
        return f"{self.public_url}/hub/{path}"

    def relaunch_url(self, inst: models.Instance) -> str:
        """The hub's spawn URL with the same options: opening it starts the same instance again."""
        options = {f"opt-{k}": v for k, v in sorted((inst.user_options or {}).items()) if v not in (None, "")}
        path = f"spawn/{quote(inst.user, safe='')}" + (f"/{quote(inst.server_name, safe='')}" if inst.server_name
                                                          else "")
        return self.hub_url(path) + (f"?{urlencode(options)}" if options else "")

    def lab_url(self, inst: models.Instance) -> str:
        server = f"{quote(inst.server_name, safe='')}/" if inst.server_name else ""
        return f"{self.public_url}/user/{quote(inst.user, safe='')}/{server}lab"

    def admin_url(self) -> str:
        """Where operators decide: the hub's operator console (visa_hub.ops), which shows this service's data."""
        return self.hub_url("visa/ops")

    # ------------------------------------------------------------------ the periodic pass
    async def tick(self) -> None:
        """One pass over every running instance (see the module docstring)."""
        servers = await self.hub.running_servers(listed=True)
        self.hub_reachable = True
        now = self.clock()
        # a server the hub still lists has not ended, ready or not (right after a hub restart JupyterHub re-checks
        # every server, and they are not ready until it has)
        listed = {(server.user, server.name, server.started) for server in servers}
        for server in servers:
            if not server.ready:
                continue
            inst = self._instance_for(server, now)
            await self._check_membership(inst, now)
            await self._apply(inst, now)
        for inst in self.db.scalars(select(models.Instance).where(models.Instance.stopped_at.is_(None))):
            if (inst.user, inst.server_name, inst.started) not in listed:
                inst.stopped_at = now
                inst.stop_reason = inst.stop_reason or "stopped"
                models.audit(self.db, SERVICE_ACTOR, "instance-ended", inst.user, inst.server_name,
                             reason=inst.stop_reason)
                self.log.info("Instance %s/%s (%s) ended: %s", inst.user, inst.server_name, inst.experiment,
                              inst.stop_reason)
        self.db.commit()

    def _instance_for(self, server: RunningServer, now: dt.datetime) -> models.Instance:
        inst = self.db.scalars(select(models.Instance).where(
            models.Instance.user == server.user, models.Instance.server_name == server.name,
            models.Instance.started == server.started)).first()
        if inst is not None and inst.stopped_at is not None:  # taken for ended, but the hub has it (ready again)
            inst.stopped_at = None
            if inst.stop_requested_at is None:
                inst.stop_reason = None
            models.audit(self.db, SERVICE_ACTOR, "instance-resumed", inst.user, inst.server_name)
            self.log.info("Instance %s/%s (%s) is running again", inst.user, inst.server_name, inst.experiment)
        if inst is None:
            inst = self._new_instance(server)
            self.db.add(inst)
            self.db.flush()
            models.audit(self.db, SERVICE_ACTOR, "instance-seen", inst.user, inst.server_name,
                         experiment=inst.experiment, expires_at=inst.expires_at.isoformat(), backend=inst.backend)
            if inst.experiment and inst.user_options:
                self._remember_options(inst, now)
            self.log.info("Following %s/%s: experiment %s on %s, expires %s", inst.user, inst.server_name,
                          inst.experiment, inst.backend, inst.expires_at.isoformat())
        if server.last_activity and (inst.last_activity is None or server.last_activity > inst.last_activity):
            inst.last_activity = server.last_activity
        return inst

    def _new_instance(self, server: RunningServer) -> models.Instance:
        session, owner, options = server.session, server.owner, server.user_options
        experiment = (session.get("experiment") or {}).get("code") or options.get("experiment") or ""
        backend, ref = server.backend
        inst = models.Instance(
            user=server.user, server_name=server.name, started=server.started, experiment=experiment,
            instrument=session.get("instrument") or "", flavour=(session.get("flavour") or {}).get("name", ""),
            image=session.get("image") or "", backend=backend, backend_ref=ref,
            owner_name=owner.get("name") or server.user, owner_email=owner.get("email") or "",
            owner_subject=owner.get("subject"), staff=bool(owner.get("staff")), user_options=options,
            last_activity=server.last_activity,
        )
        expires = session.get("expires_at")
        if expires:
            expires_at = dt.datetime.fromisoformat(expires)
        else:  # not a visa-hub spawner: the site's default lifetime from the start
            expires_at = server.started + dt.timedelta(hours=self.limits(inst).default_hours)
        inst.expires_at = inst.initial_expires_at = expires_at.astimezone(dt.UTC)
        return inst

    def _remember_options(self, inst: models.Instance, now: dt.datetime) -> None:
        row = self.db.get(models.LastOptions, (inst.user, inst.experiment))
        if row is None:
            row = models.LastOptions(user=inst.user, experiment=inst.experiment)
            self.db.add(row)
        row.server_name, row.options, row.updated_at = inst.server_name, dict(inst.user_options or {}), now

    async def _check_membership(self, inst: models.Instance, now: dt.datetime) -> None:
        if self.user_office is None or inst.staff or not inst.experiment:
            return
        try:
            person = await self.user_office.find_person(username=inst.user, subject=inst.owner_subject,
                                                        email=inst.owner_email or None)
        except UserOfficeUnavailable as exc:
            self.log.warning("User Office unavailable, membership of %s not checked: %s", inst.user, exc)
            return
        member = person is not None and (person.is_staff or person.experiment(inst.experiment) is not None)
        if not member and inst.membership_lost_at is None:
            inst.membership_lost_at = now
            models.audit(self.db, SERVICE_ACTOR, "membership-lost", inst.user, inst.server_name,
                         experiment=inst.experiment)
            self.log.info("%s is no longer a member of %s: instance %s/%s will stop", inst.user, inst.experiment,
                          inst.user, inst.server_name)
        elif member and inst.membership_lost_at is not None:
            inst.membership_lost_at = None
            models.audit(self.db, SERVICE_ACTOR, "membership-restored", inst.user, inst.server_name,
                         experiment=inst.experiment)

    async def _apply(self, inst: models.Instance, now: dt.datetime) -> None:
        decision = self.decision(inst, now)
        for warning in decision.send:
            row = models.WarningSent(instance=inst, key=warning.key, kind=warning.kind, level=warning.level,
                                     deadline=warning.deadline, sent_at=now,
                                     message=self.warning_text(warning.kind, warning.deadline, now))
            self.db.add(row)
            models.audit(self.db, SERVICE_ACTOR, f"warning-{warning.kind}", inst.user, inst.server_name,
                         deadline=warning.deadline.isoformat(), key=warning.key)
            self.db.commit()  # recorded before the mail goes: never twice, even if the service dies now
            row.mailed = await self._mail_warning(inst, warning.kind, warning.deadline, now)
            self.db.commit()
        if decision.stop:
            await self.stop(inst, decision.stop, SERVICE_ACTOR, now)

    def warning_text(self, kind: str, deadline: dt.datetime, now: dt.datetime) -> str:
        left = time_left((deadline - now).total_seconds())
        at = deadline.strftime("%H:%M UTC")
        if kind == EXPIRY:
            return f"This instance reaches the end of its lifetime in {left} (at {at}). Extend it, or relaunch " \
                   "later with the same settings: your files and layout are kept."
        if kind == INACTIVITY:
            return f"This instance has been idle and stops in {left} (at {at}) unless you use it."
        return f"You are no longer a member of this experiment: the instance stops in {left} (at {at})."

    async def _mail_warning(self, inst: models.Instance, kind: str, deadline: dt.datetime, now: dt.datetime) -> bool:
        template = {EXPIRY: "expiry_warning", INACTIVITY: "inactivity_warning", MEMBERSHIP: "membership_warning"}[kind]
        limits = self.limits(inst)
        return await self.mailer.send(
            inst.owner_email, template, name=inst.owner_name, experiment=inst.experiment, flavour=inst.flavour,
            deadline=deadline.strftime("%Y-%m-%d %H:%M"), time_left=time_left((deadline - now).total_seconds()),
            relaunch_url=self.relaunch_url(inst), lab_url=self.lab_url(inst), hub_url=self.hub_url("home"),
            can_extend=limits.extension_max_hours > (inst.expires_at - inst.started).total_seconds() / 3600,
        )

    # ------------------------------------------------------------------ actions
    async def stop(self, inst: models.Instance, reason: str, actor: str, now: dt.datetime | None = None) -> None:
        """Stop through the hub (the spawner deletes the VM, cancels the job or ends the process)."""
        now = now or self.clock()
        if inst.stop_requested_at and (now - inst.stop_requested_at).total_seconds() < 60:
            return  # asked already; the hub is stopping it
        first = inst.stop_requested_at is None
        inst.stop_requested_at, inst.stop_reason = now, reason
        models.audit(self.db, actor, "stop", inst.user, inst.server_name, reason=reason, experiment=inst.experiment)
        self.db.commit()
        self.log.info("Stopping %s/%s (%s): %s", inst.user, inst.server_name, inst.experiment, reason)
        await self.hub.stop_server(inst.user, inst.server_name)
        if first:
            await self.mailer.send(inst.owner_email, "stopped", name=inst.owner_name, experiment=inst.experiment,
                                   stopped_at=now.strftime("%Y-%m-%d %H:%M"),
                                   reason=STOP_TEXT.get(reason, reason) + ".", relaunch_url=self.relaunch_url(inst))

    async def set_expiry(self, inst: models.Instance, new_expires_at: dt.datetime, actor: str, action: str) -> None:
        """Move the expiry (extend or shorten), the backend first (a Slurm job's time limit)."""
        if inst.backend == "slurm" and inst.backend_ref:
            try:
                await self.slurm.set_expiry(inst.backend_ref, new_expires_at)
            except ExpiryRefused as exc:
                raise SessionsError(409, str(exc)) from None
        old = inst.expires_at
        inst.expires_at = new_expires_at
        models.audit(self.db, actor, action, inst.user, inst.server_name, experiment=inst.experiment,
                     old=old.isoformat(), new=new_expires_at.isoformat())
        self.db.commit()
        self.log.info("%s: %s/%s now expires %s (was %s)", action, inst.user, inst.server_name,
                      new_expires_at.isoformat(), old.isoformat())

    async def extend(self, inst: models.Instance, hours: float | None, comment: str, actor: str) -> dict[str, Any]:
        """Her 'Extend': at once within the rules, else a request for the admins (one pending at a time)."""
        limits = self.limits(inst)
        hours = limits.extension_step_hours if hours is None else hours
        if not 0 < hours <= 24 * 366:
            raise SessionsError(400, "Ask for a positive number of hours.")
        new = inst.expires_at + dt.timedelta(hours=hours)
        outcome = extension_outcome(limits, inst.started, inst.expires_at, new)
        if outcome.kind == "refused":
            raise SessionsError(400, outcome.message)
        if outcome.kind == "auto":
            await self.set_expiry(inst, new, actor, "extend")
            return {"status": "extended", "expires_at": new.isoformat(), "message": outcome.message}
        pending = inst.pending_request()
        if pending is not None:
            raise SessionsError(409, f"Your request of {pending.created_at:%Y-%m-%d %H:%M} UTC is still waiting for "
                                     "an administrator; you can have one pending request at a time.")
        if not comment.strip():
            raise SessionsError(400, f"{outcome.message} Say in a comment why you need the instance longer.")
        request = models.ExtensionRequest(instance=inst, user=inst.user, server_name=inst.server_name,
                                          requested_expires_at=new, comment=comment.strip()[:2000],
                                          created_at=self.clock())
        self.db.add(request)
        models.audit(self.db, actor, "extension-requested", inst.user, inst.server_name, experiment=inst.experiment,
                     requested=new.isoformat(), comment=request.comment)
        self.db.commit()
        await self.mailer.send(
            self.admin_emails, "extension_request", user=inst.user, owner_name=inst.owner_name,
            experiment=inst.experiment, flavour=inst.flavour, backend=inst.backend,
            expires=inst.expires_at.strftime("%Y-%m-%d %H:%M"), requested=new.strftime("%Y-%m-%d %H:%M"),
            comment=request.comment, admin_url=self.admin_url())
        return {"status": "pending", "request": request.to_dict(), "message": outcome.message}

    async def decide_request(self, request: models.ExtensionRequest, accept: bool, answer: str,
                             admin: str) -> models.ExtensionRequest:
        if request.status != models.PENDING:
            raise SessionsError(409, f"This request was already {request.status}.")
        inst = request.instance
        if accept:
            if not inst.running:
                raise SessionsError(409, "The instance has stopped; nothing to extend.")
            await self.set_expiry(inst, request.requested_expires_at, admin, "extend-approved")
        request.status = models.ACCEPTED if accept else models.REFUSED
        request.decided_at, request.decided_by, request.answer = self.clock(), admin, answer.strip()[:2000]
        models.audit(self.db, admin, f"extension-{request.status}", inst.user, inst.server_name,
                     experiment=inst.experiment, request=request.id, answer=request.answer)
        self.db.commit()
        await self.mailer.send(
            inst.owner_email, "extension_answer", name=inst.owner_name, experiment=inst.experiment,
            status=request.status, decided_by=admin, answer=request.answer,
            requested=request.requested_expires_at.strftime("%Y-%m-%d %H:%M"),
            expires=inst.expires_at.strftime("%Y-%m-%d %H:%M"))
        return request

    # ------------------------------------------------------------------ views
    def view(self, inst: models.Instance, now: dt.datetime | None = None) -> dict[str, Any]:
        """What Lab, the hub page and the admin page show about one instance."""
        now = now or self.clock()
        limits = self.limits(inst)
        decision = self.decision(inst, now)
        sent = inst.sent()
        warnings = [{
            "key": w.key, "kind": w.kind, "level": w.level, "deadline": w.deadline.isoformat(),
            "seconds_left": max(0, int((w.deadline - now).total_seconds())),
            "message": self.warning_text(w.kind, w.deadline, now), "sent": w.key in sent,
        } for w in decision.active]
        expiry_level = max((w.level for w in decision.active if w.kind == EXPIRY), default=0)
        pending = inst.pending_request()
        answers = [r.to_dict() for r in inst.requests if r.status != models.PENDING]
        lifetime_hours = (inst.expires_at - inst.started).total_seconds() / 3600
        return {
            "user": inst.user, "server_name": inst.server_name, "experiment": inst.experiment,
            "instrument": inst.instrument, "flavour": inst.flavour, "image": inst.image, "backend": inst.backend,
            "owner_name": inst.owner_name, "running": inst.running, "started": inst.started.isoformat(),
            "expires_at": inst.expires_at.isoformat(),
            "seconds_left": max(0, int((inst.expires_at - now).total_seconds())),
            "last_activity": inst.last_activity.isoformat() if inst.last_activity else None,
            "stop_reason": inst.stop_reason, "stopped_at": inst.stopped_at.isoformat() if inst.stopped_at else None,
            "warnings": warnings, "level": expiry_level, "levels": len(expiry_thresholds(self.facts(inst), limits)),
            "extension": {
                "step_hours": limits.extension_step_hours, "auto": limits.auto_extend,
                "auto_up_to_hours": limits.auto_up_to_hours, "max_hours": limits.extension_max_hours,
                "lifetime_hours": lifetime_hours, "pending": pending.to_dict() if pending else None,
            },
            "answers": answers,
            "relaunch_url": self.relaunch_url(inst), "lab_url": self.lab_url(inst),
        }

    def running_instances(self, user: str | None = None) -> list[models.Instance]:
        query = select(models.Instance).where(models.Instance.stopped_at.is_(None))
        if user is not None:
            query = query.where(models.Instance.user == user)
        return list(self.db.scalars(query.order_by(models.Instance.expires_at)))
