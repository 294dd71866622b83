"""visa-hub's look on JupyterHub's pages: templates, logo, colours, the static files they use.

:func:`configure_look` registers it on a JupyterHub config object. Operators change it in their config:
``c.JupyterHub.logo_file`` (an SVG or PNG of their own), ``c.VisaTheme.primary_colour`` and the other
:class:`~visa_hub.look.theme.VisaTheme` settings; JupyterHub's ``template_vars`` (``announcement_login``,
``announcement_home``, ...) still work — update that dict rather than replacing it, it holds ``visa``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tornado import web
from traitlets import TraitError

from ..instances import START_STEPS
from .theme import VisaTheme

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parents[1] / "templates"
LOGO = STATIC / "logo.svg"

#: ``{hub}/hub/visa/static/<file>``: the stylesheet, scripts, logo and icon of visa-hub's pages (public).
ROUTES = [(r"/visa/static/(.*)", web.StaticFileHandler, {"path": str(STATIC)})]

log = logging.getLogger("JupyterHub")


class ThemeVars:
    """The ``visa`` template variable: the theme read from the final configuration, on first use."""

    def __init__(self, config: Any):
        self.config = config
        self._vars: dict[str, Any] | None = None

    def __call__(self, user: Any = None) -> dict[str, Any]:
        if self._vars is None:
            try:
                theme = VisaTheme(config=self.config).template_vars()
            except TraitError as exc:  # a bad colour must not take every page down: say it, use the defaults
                log.error("visa-hub theme setting refused, using the default look: %s", exc)
                theme = VisaTheme().template_vars()
            steps = [{"key": s.key, "title": s.title, "starts_at": s.starts_at} for s in START_STEPS]
            self._vars = {**theme, "static_version": static_version(), "start_steps": steps}
        return self._vars


def static_version() -> str:
    """Changes when a static file changes, so that browsers fetch the new one (``?v=`` on their URLs)."""
    newest = max(path.stat().st_mtime_ns for path in STATIC.iterdir())
    return format(newest, "x")[-10:]


def configure_look(c: Any) -> None:
    """Templates, logo, theme and static files on a JupyterHub config object ``c``."""
    c.JupyterHub.template_paths.insert(0, str(TEMPLATES))
    c.JupyterHub.logo_file = str(LOGO)
    c.JupyterHub.template_vars.update({"visa": ThemeVars(c)})
    c.JupyterHub.extra_handlers.extend(ROUTES)
