"""Reading the app catalog live from shared storage: re-parsed when a file changes, cheap when none did.

A long-running reader (the Jupyter server) keeps the last good catalog when a publisher's edit is broken and
shows the error; a one-shot reader (``visa-app``) reports it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..sitedata import SiteDataError
from .catalog import AppCatalog, Cycle, catalog_files, load_site_catalog, load_user_apps, with_user_apps
from .settings import AppSettings


def _fingerprint(paths: list[Path]) -> tuple:
    marks = []
    for path in paths:
        try:
            info = path.stat()
            marks.append((str(path), info.st_mtime_ns, info.st_size, info.st_ino))
        except OSError:
            marks.append((str(path), None))
    return tuple(marks)


class CatalogSource:
    """The site catalog plus her registered images, as of now."""

    def __init__(self, settings: AppSettings):
        self.settings = settings
        self._site: tuple[tuple, AppCatalog] | None = None
        self._user: tuple[tuple, AppCatalog] | None = None

    def _site_files(self) -> list[Path]:
        files: list[Path] = []
        for location in self.settings.catalog_locations:
            try:
                files.extend(catalog_files(location))
            except OSError:
                files.append(Path(location))
        return files

    def site(self) -> AppCatalog:
        files = self._site_files()
        mark = _fingerprint(files) + tuple(self.settings.catalog_locations)
        if self._site is not None and self._site[0] == mark:
            return self._site[1]
        try:
            catalog = load_site_catalog(list(self.settings.catalog_locations)) if files else AppCatalog()
        except SiteDataError as exc:
            if self._site is None:
                raise
            last = self._site[1]
            catalog = AppCatalog(last.apps, last.cycles, last.binds,
                                 problems=(f"The app catalog change was not applied (showing the last good one): "
                                           f"{exc}",))
        self._site = (mark, catalog)
        return catalog

    def load(self) -> AppCatalog:
        """Site apps and hers (hers marked user-provided); raises :class:`SiteDataError` for a broken site file."""
        site = self.site()
        registry = self.settings.registry_file
        mark = (id(site),) + _fingerprint([registry])
        if self._user is not None and self._user[0] == mark:
            return self._user[1]
        apps, problems = load_user_apps(registry, site, home=self.settings.home)
        catalog = with_user_apps(site, apps, problems)
        self._user = (mark, catalog)
        return catalog

    def cycle(self, catalog: AppCatalog, today: dt.date | None = None) -> Cycle | None:
        """The session's proposal cycle: ``VISA_APPS_CYCLE``, else the cycle of the experiment's start, else today's."""
        if self.settings.cycle:
            return catalog.cycle(self.settings.cycle)
        day = self.settings.experiment_start or today or dt.date.today()
        return catalog.cycle_for(day)
