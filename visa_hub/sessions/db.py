"""The sessions service's state in SQLAlchemy: SQLite in the data directory by default, PostgreSQL in production.

Instances are keyed by (user, server name, start time): server name ``""`` is the default server, and the
start time tells one run of a named server from the next. Tables are prefixed ``visa_`` so that they can
live in the hub's own PostgreSQL database.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out (stored naive, as UTC, on every database)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the sessions database")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class JSONText(TypeDecorator):
    """JSON kept as text (portable between SQLite and PostgreSQL)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else json.dumps(value, sort_keys=True)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


class Base(DeclarativeBase):
    pass


class Instance(Base):
    """One run of one server: what it runs for, when it ends, what happened to it."""

    __tablename__ = "visa_instances"
    __table_args__ = (UniqueConstraint("user", "server_name", "started"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    started: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    experiment: Mapped[str] = mapped_column(String(255), default="")
    instrument: Mapped[str] = mapped_column(String(255), default="")
    flavour: Mapped[str] = mapped_column(String(255), default="")
    image: Mapped[str] = mapped_column(String(255), default="")
    backend: Mapped[str] = mapped_column(String(32), default="")
    backend_ref: Mapped[str | None] = mapped_column(String(255), nullable=True)  # Slurm job id, cloud server id
    owner_name: Mapped[str] = mapped_column(String(255), default="")
    owner_email: Mapped[str] = mapped_column(String(255), default="")
    owner_subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    staff: Mapped[bool] = mapped_column(Boolean, default=False)
    user_options: Mapped[Any] = mapped_column(JSONText, nullable=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    initial_expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_activity: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    membership_lost_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    stop_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    stopped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)

    warnings: Mapped[list[WarningSent]] = relationship(back_populates="instance", cascade="all, delete-orphan")
    requests: Mapped[list[ExtensionRequest]] = relationship(back_populates="instance", cascade="all, delete-orphan")

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    def sent(self) -> dict[str, dt.datetime]:
        return {w.key: w.sent_at for w in self.warnings}

    def pending_request(self) -> ExtensionRequest | None:
        return next((r for r in self.requests if r.status == PENDING), None)


class WarningSent(Base):
    """A warning the service sent (e-mail and notification); its key names kind, threshold and deadline."""

    __tablename__ = "visa_warnings"
    __table_args__ = (UniqueConstraint("instance_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("visa_instances.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    level: Mapped[int] = mapped_column(Integer, default=1)
    deadline: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    mailed: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str] = mapped_column(Text, default="")

    instance: Mapped[Instance] = relationship(back_populates="warnings")


PENDING, ACCEPTED, REFUSED = "pending", "accepted", "refused"


class ExtensionRequest(Base):
    """A request to extend beyond what is automatic; an admin accepts or refuses it."""

    __tablename__ = "visa_extension_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("visa_instances.id", ondelete="CASCADE"), index=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    requested_expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    answer: Mapped[str] = mapped_column(Text, default="")

    instance: Mapped[Instance] = relationship(back_populates="requests")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "user": self.user, "server_name": self.server_name,
            "experiment": self.instance.experiment if self.instance else "",
            "requested_expires_at": _iso(self.requested_expires_at), "comment": self.comment,
            "status": self.status, "created_at": _iso(self.created_at), "decided_at": _iso(self.decided_at),
            "decided_by": self.decided_by, "answer": self.answer,
        }


class AuditEvent(Base):
    """Who did what to which instance, when: one row per event (admins read them through the REST API)."""

    __tablename__ = "visa_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(255))  # a user name, or "visa-sessions" for the service itself
    action: Mapped[str] = mapped_column(String(64), index=True)
    user: Mapped[str] = mapped_column(String(255), default="")  # the instance's owner
    server_name: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[Any] = mapped_column(JSONText, nullable=True)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": _iso(self.at), "actor": self.actor, "action": self.action,
                "user": self.user, "server_name": self.server_name, "detail": self.detail or {}}


class LastOptions(Base):
    """The spawn options a person last used for an experiment (for 'relaunch with the same settings')."""

    __tablename__ = "visa_last_options"

    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    experiment: Mapped[str] = mapped_column(String(255), primary_key=True)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    options: Mapped[Any] = mapped_column(JSONText)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def open_database(url: str) -> Session:
    """Connect, create missing tables, and return a session (the service's single writer)."""
    engine = create_engine(url, future=True)
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()
    Base.metadata.create_all(engine)
    return Session(engine, expire_on_commit=False)


def find_instance(db: Session, user: str, server_name: str, running_only: bool = True) -> Instance | None:
    """The newest run of ``user``'s server ``server_name``."""
    query = select(Instance).where(Instance.user == user, Instance.server_name == server_name)
    if running_only:
        query = query.where(Instance.stopped_at.is_(None))
    return db.scalars(query.order_by(Instance.started.desc())).first()


def audit(db: Session, actor: str, action: str, user: str = "", server_name: str = "", **detail: Any) -> AuditEvent:
    event_row = AuditEvent(at=dt.datetime.now(dt.UTC), actor=actor, action=action, user=user,
                           server_name=server_name, detail=detail or None)
    db.add(event_row)
    return event_row
