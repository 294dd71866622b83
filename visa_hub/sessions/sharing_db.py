"""The sessions service's sharing tables (beside the lifetime ones in :mod:`.db`, same ``Base``, same database).

JupyterHub keeps the shares themselves; these rows keep what JupyterHub does not: the role, who granted it,
until when (support windows), the support requests and their answers, the owner's sharing settings.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, UTCDateTime


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


class ShareRecord(Base):
    """One share the service granted: (instance, person) → role, while ``ended_at`` is empty."""

    __tablename__ = "visa_shares"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    user: Mapped[str] = mapped_column(String(255), index=True)
    role: Mapped[str] = mapped_column(String(32))
    experiment: Mapped[str] = mapped_column(String(255), default="")
    granted_by: Mapped[str] = mapped_column(String(255))
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    request_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)

    def to_dict(self, name: str = "") -> dict[str, Any]:
        return {"user": self.user, "name": name or self.user, "role": self.role, "owner": self.owner,
                "server_name": self.server_name, "experiment": self.experiment, "granted_by": self.granted_by,
                "granted_at": _iso(self.granted_at), "expires_at": _iso(self.expires_at),
                "ended_at": _iso(self.ended_at), "end_reason": self.end_reason}


REQUEST_PENDING, REQUEST_SUPPORT, REQUEST_GUEST, REQUEST_REFUSED, REQUEST_WITHDRAWN = (
    "pending", "accepted-as-support", "accepted-as-guest", "refused", "withdrawn")


class SupportRequest(Base):
    """A staff member's request to join an instance; the owner accepts (as support or as guest) or refuses."""

    __tablename__ = "visa_support_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    experiment: Mapped[str] = mapped_column(String(255), default="")
    requester: Mapped[str] = mapped_column(String(255), index=True)
    requester_name: Mapped[str] = mapped_column(String(255), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(32), default=REQUEST_PENDING, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    window_hours: Mapped[float | None] = mapped_column(Float, nullable=True)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "owner": self.owner, "server_name": self.server_name, "experiment": self.experiment,
                "requester": self.requester, "requester_name": self.requester_name, "comment": self.comment,
                "status": self.status, "created_at": _iso(self.created_at), "decided_at": _iso(self.decided_at),
                "decided_by": self.decided_by, "window_hours": self.window_hours}


class SharingSettings(Base):
    """The owner's choices for one server (kept across restarts of the instance) and its owner's presence."""

    __tablename__ = "visa_sharing_settings"
    __table_args__ = (UniqueConstraint("owner", "server_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    owner_away: Mapped[str] = mapped_column(String(16), default="lock")
    unrestricted: Mapped[bool] = mapped_column(Boolean, default=False)
    owner_present: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
