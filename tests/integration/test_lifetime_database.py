"""The sessions service's tables on both databases it supports: SQLite (default) and PostgreSQL (production)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.exc import StatementError

from visa_hub.sessions import db as models

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'visa-sessions.sqlite'}"
    return request.getfixturevalue("postgres_url")


def test_lifetime_state_survives_reconnecting(database_url):
    started = dt.datetime(2026, 11, 27, 21, 0, 1, 250000, tzinfo=dt.UTC)
    db = models.open_database(database_url)
    inst = models.Instance(user="alice", server_name="", started=started, experiment="LOKI-2026-042",
                           expires_at=started + dt.timedelta(minutes=3),
                           initial_expires_at=started + dt.timedelta(minutes=3), user_options={"flavour": "small"})
    db.add(inst)
    db.add(models.WarningSent(instance=inst, key="expiry:120s:x", kind="expiry", deadline=inst.expires_at,
                              sent_at=started))
    db.add(models.ExtensionRequest(instance=inst, user="alice", requested_expires_at=inst.expires_at,
                                   created_at=started, comment="more beam"))
    models.audit(db, "alice", "extension-requested", "alice", "", comment="more beam")
    db.commit()
    db.close()
    db.get_bind().dispose()

    again = models.open_database(database_url)  # a restarted service: same rows, same aware UTC times
    found = models.find_instance(again, "alice", "")
    assert found is not None and found.started == started and found.started.tzinfo is not None
    assert found.user_options == {"flavour": "small"} and list(found.sent()) == ["expiry:120s:x"]
    assert found.pending_request().comment == "more beam"
    with pytest.raises(StatementError, match="naive datetime"):  # a time without a zone is a bug, not data
        again.add(models.Instance(user="bob", started=dt.datetime(2026, 1, 1), expires_at=started,
                                  initial_expires_at=started))
        again.commit()
    again.rollback()
    for table in reversed(models.Base.metadata.sorted_tables):
        again.execute(table.delete())
    again.commit()
