"""Spawner side of one-time bootstrap codes (see :mod:`visa_hub.bootstrap`).

A backend calls :meth:`BootstrapCodes.issue_bootstrap_code` in ``start`` and gives the code to the instance
instead of the API token. The hub's ``/hub/api/visa/instance-token`` endpoint calls
:meth:`BootstrapCodes.redeem_bootstrap_code` when the instance presents it: the first use returns the server's
token, every later one is refused and logged. Spawner state keeps only the code's hash, when and from where it
was spent, and the database id of the server's token, so this works after a hub restart between the create and
the boot too: the hub no longer knows the token then (it keeps only its hash), so it issues the server a new
one with the same scopes, retires the old one and updates the server's OAuth client secret.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from traitlets.config import LoggingConfigurable

from visa_hub.bootstrap import code_hash, code_matches, new_code


class BootstrapCodes(LoggingConfigurable):
    """Mixin for :class:`jupyterhub.spawner.Spawner` backends whose instances fetch their token at boot."""

    _bootstrap: dict[str, Any] | None = None

    def issue_bootstrap_code(self) -> str:
        """A new one-time code for this spawn (replaces any earlier one); only its hash is kept."""
        code = new_code()
        self._bootstrap = {"hash": code_hash(code), "issued_at": _now(), "spent_at": None,
                           "token_id": self._token_id(self.api_token)}
        return code

    async def redeem_bootstrap_code(self, code: str, remote_ip: str) -> str | None:
        """The server's API token for the first presentation of this spawn's code; ``None`` (and a log line)
        for anything else."""
        record = self._bootstrap
        name = self._log_name
        if not record or not code_matches(code, record["hash"]):
            self.log.warning("Refused an instance bootstrap code for %s from %s: not the code of its current "
                             "spawn", name, remote_ip)
            return None
        if record.get("spent_at"):
            self.log.warning("Refused a second use of the bootstrap code of %s from %s (first used at %s from "
                             "%s)", name, remote_ip, record["spent_at"], record.get("spent_from"))
            return None
        record.update(spent_at=_now(), spent_from=remote_ip)  # spent before anything awaits: used once only
        self._save_state_now()
        token = self.api_token or self._reissue_api_token(record)
        self._save_state_now()
        if token:
            self.log.info("The instance of %s fetched its API token from %s (bootstrap code spent)", name, remote_ip)
        return token or None

    # ---------------------------------------------------------------- after a hub restart

    def _reissue_api_token(self, record: dict[str, Any]) -> str | None:
        """A new token with the scopes of the server's current one, which is deleted; the OAuth client's secret
        follows (jupyterhub-singleuser uses its token as that secret)."""
        from jupyterhub import orm
        from jupyterhub.utils import hash_token

        db = self._db()
        old = db.get(orm.APIToken, record["token_id"]) if record.get("token_id") else None
        user = self.user
        # only the server token JupyterHub issued for this spawn (JupyterHub notes it "Server at <url>")
        ours = old is not None and old.user is not None and old.user.id == user.orm_user.id
        if not ours or not (old.note or "").startswith("Server at "):
            self.log.error("Cannot give the instance of %s an API token: its token (id %s) is gone from the "
                           "database", self._log_name, record.get("token_id"))
            return None
        token = user.new_api_token(note=old.note, scopes=list(old.scopes))
        db.delete(old)
        client = self.orm_spawner.oauth_client if self.orm_spawner is not None else None
        if client is not None:
            client.secret = hash_token(token)
        db.commit()
        self.api_token = token  # so that stopping the server deletes it
        record["token_id"] = self._token_id(token)
        self.log.info("Issued a new API token for %s (the hub restarted since its spawn)",
                      self._log_name)
        return token

    def _token_id(self, token: str) -> int | None:
        if not token:
            return None
        from jupyterhub import orm

        found = orm.APIToken.find(self._db(), token)
        return found.id if found is not None else None

    def _save_state_now(self) -> None:
        """Commit spawner state at once: a spent code must stay spent even if the hub dies right after."""
        if self.orm_spawner is not None:
            self.orm_spawner.state = self.get_state()
            self._db().commit()

    def _db(self) -> Any:
        """The hub's database session that holds this spawner's record (Spawner.db is deprecated)."""
        from sqlalchemy.orm import object_session

        return object_session(self.orm_spawner)

    # ---------------------------------------------------------------- state

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self._bootstrap:
            state["bootstrap"] = dict(self._bootstrap)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self._bootstrap = dict(state["bootstrap"]) if state.get("bootstrap") else None

    def clear_state(self) -> None:
        super().clear_state()
        self._bootstrap = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
