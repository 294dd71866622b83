"""The site: its catalog and its User Office, configured once per hub process and shared.

The authenticator and every spawner read the same :class:`VisaSite` singleton, so the catalog is parsed
once (and again only when its file changes) and there is one User Office client with one cache.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from traitlets import Instance, Type, Unicode, default
from traitlets.config import SingletonConfigurable

from .catalog import Catalog, load_catalog
from .people import Experiment
from .useroffice import UserOffice
from .useroffice.file import FileUserOffice


class VisaSite(SingletonConfigurable):
    """Site-wide settings shared by visa-hub's authenticators and spawners."""

    catalog_file = Unicode(
        "",
        config=True,
        help="Site catalog YAML (instruments, flavours, images, rules). Empty: the demo catalog.",
    )

    user_office_class = Type(
        FileUserOffice,
        klass=UserOffice,
        config=True,
        help="User Office backend class (the demo's FileUserOffice, or the GraphQL client in production).",
    )

    user_office = Instance(UserOffice)

    @default("user_office")
    def _default_user_office(self) -> UserOffice:
        return self.user_office_class(parent=self)

    _catalog: tuple[float, Catalog] | None = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.catalog  # noqa: B018  (validate at start-up: a broken catalog stops the hub with a clear error)

    @property
    def catalog_path(self) -> Path:
        from .demo import DEMO_CATALOG

        return Path(self.catalog_file or DEMO_CATALOG)

    @property
    def catalog(self) -> Catalog:
        """The validated catalog, re-read when the file changes (a broken edit keeps the last good one)."""
        path = self.catalog_path
        mtime = path.stat().st_mtime
        if self._catalog is None:
            self._catalog = (mtime, load_catalog(path))
            self.log.info("Site catalog %s: %d instruments", path, len(self._catalog[1].instruments))
        elif self._catalog[0] != mtime:
            try:
                self._catalog = (mtime, load_catalog(path))
                self.log.info("Site catalog %s reloaded", path)
            except ValueError as exc:
                self.log.error("Site catalog change rejected, keeping the previous one: %s", exc)
                self._catalog = (mtime, self._catalog[1])
        return self._catalog[1]

    async def site_experiments(self) -> list[Experiment]:
        return await self.user_office.site_experiments()

    @staticmethod
    def now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)
