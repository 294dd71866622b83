"""``visa-hub slurm-sync`` as a JupyterHub managed service: the hub starts it, restarts it, stops it with itself.

In the hub's config::

    from visa_hub.slurm.service import slurm_sync_service
    c.JupyterHub.services.append(slurm_sync_service(interval=600))

(or ``VISA_SLURM_SYNC_INTERVAL=600`` with :func:`visa_hub.hubconfig.configure`). It runs as the hub's user, who
must be coordinator of the parent account (docs/slurm.md); it needs no API token and no URL.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

# what the sync reads from the environment: the same catalog, User Office and Slurm cluster as the hub
PASSED_ON = ("PATH", "SLURM_CONF", "VISA_CATALOG", "VISA_USER_OFFICE_FILE", "VISA_USER_OFFICE_URL",
             "VISA_USER_OFFICE_TOKEN", "VISA_USER_OFFICE_AMQP_URL")


def slurm_sync_service(interval: float = 600, *, name: str = "slurm-sync", args: Sequence[str] = (),
                       env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A ``c.JupyterHub.services`` entry that syncs Slurm accounts every ``interval`` seconds.

    ``args``: more command-line options, e.g. ``["--SlurmSync.parent_account=ess-visa"]`` or
    ``["--config=/etc/visa-hub/slurm_sync_config.py"]``.
    """
    env = os.environ if env is None else env
    return {
        "name": name,
        "command": [sys.executable, "-m", "visa_hub.cli", "slurm-sync", f"--interval={interval:g}", *args],
        "environment": {key: env[key] for key in PASSED_ON if env.get(key)},
    }
