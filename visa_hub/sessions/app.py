"""The sessions service process: ``python -m visa_hub.sessions --hub-config <jupyterhub_config.py>``.

JupyterHub starts it as a managed service (see :func:`visa_hub.sessions.configure_service`) with its API token
and OAuth client in the environment. It reads the hub's own config file, so the site catalog, the User Office
and every ``c.VisaSessions`` / ``c.VisaMailer`` / ``c.SlurmLimits`` setting are the hub's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from urllib.parse import urlparse

import jinja2
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import web
from traitlets import Float, List, Unicode, default
from traitlets.config import Application, Configurable

from ..logsafe import keep_config_out_of_log
from ..site import VisaSite
from .backends import SlurmLimits
from .db import open_database
from .handlers import AdminCache, routes
from .hubapi import HubAPI
from .mailer import VisaMailer
from .scheduler import Scheduler
from .service import Sessions
from .sharing import Sharing
from .sharing_handlers import sharing_routes

PAGES = Path(__file__).parent / "pages"
#: Bodies the server reads at all (a bigger one closes the connection); handlers refuse more than 64 KiB with 413.
MAX_BODY_BYTES = 1 << 20


class VisaSessions(Configurable):
    """The hub-side sessions service: lifetimes, inactivity, membership stops, extension requests, audit."""

    db_url = Unicode(
        "", config=True,
        help="SQLAlchemy URL of the service's database (e.g. the hub's postgresql://...; its tables are named "
             "visa_*). Empty: SQLite file visa-sessions.sqlite in the data directory.",
    )
    data_dir = Unicode("", config=True, help="Where the default SQLite database lives (default: $VISA_DATA_DIR).")
    poll_interval = Float(
        30.0, config=True,
        help="Seconds between two passes over the running instances (warnings and stops happen at most this late).",
    )
    public_url = Unicode(
        "", config=True,
        help="The hub's public URL for links in e-mail (relaunch, Lab, admin page), e.g. https://visa.ess.eu. "
             "Empty: $VISA_PUBLIC_URL.",
    )
    admin_emails = List(
        Unicode(), config=True,
        help="Who is e-mailed about extension requests (the admins who decide on the admin page).",
    )

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return os.environ.get("VISA_DATA_DIR", "data")

    @default("public_url")
    def _default_public_url(self) -> str:
        return os.environ.get("VISA_PUBLIC_URL", "http://127.0.0.1:8000")

    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{Path(self.data_dir).resolve() / 'visa-sessions.sqlite'}"


class SessionsApp(Application):
    name = "visa-sessions"
    description = "visa-hub's sessions service (a JupyterHub managed service)"
    hub_config = Unicode("", config=True, help="The hub's config file, read for the site's settings.")
    aliases = {"hub-config": "SessionsApp.hub_config", "log-level": "Application.log_level"}
    classes = [VisaSessions, VisaMailer, SlurmLimits, VisaSite, Sharing]

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO

    def initialize(self, argv=None) -> None:
        keep_config_out_of_log(self.log)  # the hub's config holds its secrets
        super().initialize(argv)
        if self.hub_config:
            path = Path(self.hub_config)
            self.load_config_file(path.name, path=str(path.parent))
            self.update_config(self.cli_config)  # the command line wins over the file

    def make_app(self) -> tuple[web.Application, Sessions, VisaSessions]:
        settings = VisaSessions(parent=self)
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/visa-sessions/")
        hub_auth = HubOAuth(api_token=os.environ["JUPYTERHUB_API_TOKEN"], cache_max_age=60, parent=self)
        hub = HubAPI(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
        site = VisaSite.instance(parent=self)
        sessions = Sessions(
            db=open_database(settings.database_url()), hub=hub, mailer=VisaMailer(parent=self),
            slurm=SlurmLimits(parent=self), catalog=lambda: site.catalog, user_office=site.user_office,
            public_url=settings.public_url, service_prefix=prefix, admin_emails=list(settings.admin_emails),
            parent=self,
        )
        sharing = Sharing(db=sessions.db, hub=hub, user_office=site.user_office, public_url=settings.public_url,
                          parent=self)
        pages = jinja2.Environment(loader=jinja2.FileSystemLoader(str(PAGES)), autoescape=True)
        app = web.Application(
            [*sharing_routes(prefix), *routes(prefix),
             (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler)],
            hub_auth=hub_auth, sessions=sessions, sharing=sharing, admins=AdminCache(hub), page_templates=pages,
            service_prefix=prefix, service_name=os.environ.get("JUPYTERHUB_SERVICE_NAME", "visa-sessions"),
            cookie_secret=os.urandom(32), xsrf_cookies=False, log_function=self._log_request,
        )
        return app, sessions, settings

    def _log_request(self, handler: web.RequestHandler) -> None:
        status = handler.get_status()
        if status >= 400 or handler.request.method != "GET":
            self.log.info("%d %s %s (%.0f ms)", status, handler.request.method, handler.request.path,
                          1000 * handler.request.request_time())

    def start(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        app, sessions, settings = self.make_app()
        url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8002"))
        server = app.listen(url.port or 80, url.hostname or "127.0.0.1", xheaders=True,
                            max_body_size=MAX_BODY_BYTES)
        scheduler = Scheduler(sessions, settings.poll_interval, self.log)
        scheduler.start()
        sharing = app.settings["sharing"]
        sharing_pass = Scheduler(sharing, sharing.interval, self.log)  # support windows, removed members
        sharing_pass.start()
        self.log.info("visa-sessions on %s (database %s, a pass every %g s)", url.geturl(),
                      settings.database_url().split("@")[-1], settings.poll_interval)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await scheduler.stop()
        await sharing_pass.stop()
        server.stop()
        sessions.db.close()


def main(argv: list[str] | None = None) -> None:
    app = SessionsApp()
    app.initialize(argv)
    app.start()
