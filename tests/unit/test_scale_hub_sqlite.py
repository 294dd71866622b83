"""The hub's SQLite database is opened in write-ahead-log mode without an fsync per commit (scale)."""

from __future__ import annotations

import sqlite3

from jupyterhub import orm
from sqlalchemy import text
from traitlets.config import Config

from visa_hub import hubdb
from visa_hub.hubconfig import configure


def _pragmas(session_factory) -> tuple[str, int, int]:
    session = session_factory()
    try:
        return tuple(session.execute(text(f"PRAGMA {name}")).scalar()  # type: ignore[return-value]
                     for name in ("journal_mode", "synchronous", "busy_timeout"))
    finally:
        session.close()


def test_scale_the_hubs_sqlite_database_uses_a_write_ahead_log(tmp_path):
    c = Config()
    configure(c, {"VISA_DATA_DIR": str(tmp_path)})
    factory = orm.new_session_factory(c.JupyterHub.db_url, **c.JupyterHub.db_kwargs)
    assert _pragmas(factory) == ("wal", 1, 5000)  # 1 = NORMAL
    session = factory()
    session.add(orm.User(name="alice"))
    session.commit()
    session.close()
    # what was committed is in the database for another process (an operator's sqlite3 shell)
    database = tmp_path / "jupyterhub.sqlite"
    with sqlite3.connect(database) as other:
        assert other.execute("SELECT name FROM users").fetchall() == [("alice",)]
    # foreign keys, which JupyterHub switches on for SQLite, still hold
    assert factory().execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_scale_a_plain_sqlite_database_without_the_tuning_keeps_sqlites_defaults(tmp_path):
    factory = orm.new_session_factory(f"sqlite:///{tmp_path / 'plain.sqlite'}")
    assert _pragmas(factory)[:2] == ("delete", 2)  # the baseline the tuning changes: rollback journal, FULL


def test_scale_the_tuning_leaves_postgresql_and_an_operators_connect_args_alone():
    c = Config()
    hubdb.configure(c, "postgresql://hub@db/jupyterhub")
    assert "db_kwargs" not in c.JupyterHub
    c = Config()
    c.JupyterHub.db_kwargs = {"connect_args": {"timeout": 30}}
    hubdb.configure(c, "sqlite:///jupyterhub.sqlite")
    assert c.JupyterHub.db_kwargs["connect_args"] == {
        "timeout": 30, "check_same_thread": False, "factory": hubdb.TunedSQLiteConnection}
