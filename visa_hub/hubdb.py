"""The hub's SQLite database, tuned for a hub with many people: write-ahead log, no fsync per commit.

JupyterHub commits on the event loop, and with SQLite's defaults (rollback journal, ``synchronous=FULL``)
each commit waits for the disk twice. Under load that wait is most of the hub's time: every request that
commits holds up every other request. In write-ahead-log mode with ``synchronous=NORMAL`` a commit is an
append to the log, synced only at checkpoints; a crash of the machine can lose the last commits but never
corrupts the database (a hub re-checks its servers at start anyway). ``busy_timeout`` lets a second process
(``jupyterhub upgrade-db``, an operator's sqlite3 shell) wait its turn instead of failing at once.

:func:`configure` sets this through ``JupyterHub.db_kwargs`` (the connection factory SQLAlchemy hands to
:func:`sqlite3.connect`). PostgreSQL, what production should use, is left alone. See docs/operations.md.
"""

from __future__ import annotations

import sqlite3
from typing import Any

#: PRAGMAs run on every new connection to the hub's SQLite database.
PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000")


class TunedSQLiteConnection(sqlite3.Connection):
    """An :class:`sqlite3.Connection` that applies :data:`PRAGMAS` when it opens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for pragma in PRAGMAS:
            self.execute(f"PRAGMA {pragma}").close()


def configure(c: Any, db_url: str) -> None:
    """Use :class:`TunedSQLiteConnection` for the hub's database if ``db_url`` is an SQLite file."""
    if not db_url.startswith("sqlite") or db_url.endswith(":memory:"):
        return
    kwargs = dict(c.JupyterHub.db_kwargs) if "db_kwargs" in c.JupyterHub else {}
    connect_args = dict(kwargs.get("connect_args") or {})
    connect_args.setdefault("check_same_thread", False)  # what JupyterHub sets when it is given none
    connect_args.setdefault("factory", TunedSQLiteConnection)
    kwargs["connect_args"] = connect_args
    c.JupyterHub.db_kwargs = kwargs
