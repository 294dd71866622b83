"""The ``visa-hub`` command: site tasks beside the hub, one subcommand each.

    visa-hub slurm-sync [--dry-run] [--interval=SECONDS] [--config=FILE] [--SlurmSync.<trait>=...]

``--config`` loads a traitlets config file, e.g. the hub's own ``jupyterhub_config.py`` (so the sync reads the same
catalog and User Office as the hub); without it, the ``VISA_*`` environment variables the hub reads apply
(``VISA_CATALOG``, ``VISA_USER_OFFICE_FILE``, ``VISA_USER_OFFICE_URL``, ...; see :mod:`visa_hub.hubconfig`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from traitlets import Float, Unicode, default
from traitlets.config import Application, Config

from .site import VisaSite
from .slurm.sync import SlurmSync


class SlurmSyncApp(Application):
    """Keep one Slurm account per experiment, with its members and limits, in step with the User Office."""

    name = "visa-hub slurm-sync"
    description = __doc__
    classes = [SlurmSync, VisaSite]

    interval = Float(
        0.0,
        config=True,
        help="Seconds between two syncs; 0: sync once and exit (non-zero exit status if a change failed).",
    )
    config_file = Unicode(
        "",
        config=True,
        help="traitlets config file to load, e.g. the hub's jupyterhub_config.py. Empty: the VISA_* environment.",
    )

    @default("log_level")
    def _log_level_default(self) -> int:
        return logging.INFO  # one line per change is the point

    aliases = {
        "interval": "SlurmSyncApp.interval",
        "config": "SlurmSyncApp.config_file",
        "f": "SlurmSyncApp.config_file",
        "log-level": "Application.log_level",
    }
    flags = {
        "dry-run": ({"SlurmSync": {"dry_run": True}}, "Log the changes without making them."),
        "debug": ({"Application": {"log_level": 10}}, "Debug logging (never shows tokens or passwords)."),
    }

    def initialize(self, argv=None) -> None:
        self.parse_command_line(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
            self.update_config(self.cli_config)  # the command line wins over the file
        else:
            from .hubconfig import configure_site

            site = Config()
            configure_site(site)
            site.merge(self.config)
            self.update_config(site)

    def start(self) -> None:
        sync = SlurmSync(parent=self, log=self.log)
        if self.interval <= 0:
            done, failed = asyncio.run(sync.run_once())
            self.exit(1 if failed else 0)
        asyncio.run(self._forever(sync))

    async def _forever(self, sync: SlurmSync) -> None:
        task = asyncio.ensure_future(sync.run_forever(self.interval))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # a managed service is stopped with SIGTERM
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            self.log.info("Slurm account sync stopped")


class VisaHubApp(Application):
    """visa-hub's site tasks."""

    name = "visa-hub"
    description = __doc__
    subcommands = {
        "slurm-sync": (SlurmSyncApp, SlurmSyncApp.__doc__),
    }

    def start(self) -> None:
        if self.subapp is None:
            self.print_subcommands()
            self.exit(2)
        self.subapp.start()


def main(argv: list[str] | None = None) -> None:
    app = VisaHubApp.instance()
    try:
        app.initialize(argv)
        app.start()
    except RuntimeError as exc:  # a User Office or Slurm that cannot answer: say so, without a traceback
        app.log.error("%s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
