"""Keep a traitlets application's configuration out of its log.

traitlets' :class:`~traitlets.config.Application` logs every configuration it loads at DEBUG ("Config changed:
{...}"), values included. visa-hub's site tasks (the sessions service, ``visa-hub slurm-sync``) load the hub's
own config file, so that line would carry the auth_state key (``CryptKeeper.keys``), the Keycloak client secret,
the User Office token and the demo password. :func:`keep_config_out_of_log` logs the section names instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

CONFIG_CHANGED = "Config changed: %r"  # traitlets.config.Application._config_changed


class ConfigSectionsOnly(logging.Filter):
    """Rewrites traitlets' "Config changed" records to name the configured sections, never their values."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == CONFIG_CHANGED:
            args: Any = record.args
            config = args[0] if isinstance(args, tuple) and args else args
            sections = sorted(config) if isinstance(config, Mapping) else []
            record.msg, record.args = "Config changed (values not logged): %s", (", ".join(sections) or "-",)
        return True


def keep_config_out_of_log(log: logging.Logger | logging.LoggerAdapter) -> None:
    """Install :class:`ConfigSectionsOnly` on an application's logger (idempotent)."""
    logger = log.logger if isinstance(log, logging.LoggerAdapter) else log
    if not any(isinstance(f, ConfigSectionsOnly) for f in logger.filters):
        logger.addFilter(ConfigSectionsOnly())
