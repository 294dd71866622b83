"""visa-hub on a Slurm cluster with accounting: one Slurm account per experiment, kept in step with the User Office.

- :mod:`~visa_hub.slurm.accounts` (pure): what the accounts, their members and their limits should be, and the
  changes that take Slurm's accounting database there;
- :mod:`~visa_hub.slurm.sacctmgr`: reads and changes Slurm's accounting database with ``sacctmgr``;
- :mod:`~visa_hub.slurm.sync`: ``visa-hub slurm-sync`` (once, on an interval, or as a JupyterHub managed service);
- :mod:`~visa_hub.slurm.jobtoken`: inside an instance's Slurm job, fetches the server's API token from the hub
  with a munge credential (so the token is never in the job's environment, script or command line).
"""

from __future__ import annotations

import re

ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def account_name(experiment_code: str) -> str:
    """The Slurm account of an experiment: its code in lower case (Slurm keeps account names in lower case)."""
    return experiment_code.strip().lower()
