"""visa-hub's Jupyter configuration for instances, as a ``JUPYTER_CONFIG_PATH`` entry.

``visa_hub/singleuser/jupyter_config/`` holds what every instance's Jupyter Server and JupyterLab read before the
person's own configuration: the kernel spec manager that lists the app kernels
(:class:`visa_hub.apps.kernelspecs.AppKernelSpecManager`) and no news feed. A spawner that starts the server from
the hub's own environment puts it on ``JUPYTER_CONFIG_PATH`` itself with :func:`jupyter_config_path` (the local
backend, ``spawners/base.py``). A Slurm job runs the instance environment of the compute nodes,
whose visa-hub may live elsewhere, so its job script asks that environment:

    export JUPYTER_CONFIG_PATH="$(python -m visa_hub.jupyter_defaults)"

prints ``JUPYTER_CONFIG_PATH`` with the directory first and what was set before after it. This module imports
nothing else, so that costs one bare interpreter start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

#: The instance's Jupyter configuration directory (``jupyter_server_config.json``, ``jupyter_lab_config.json``,
#: ``labconfig/``), shipped inside the visa_hub package.
DIRECTORY = Path(__file__).parent / "singleuser" / "jupyter_config"


def jupyter_config_path(environ: Mapping[str, str]) -> str:
    """``JUPYTER_CONFIG_PATH`` with visa-hub's directory first, then the entries ``environ`` already had."""
    before = [entry for entry in environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep)
              if entry and entry != str(DIRECTORY)]
    return os.pathsep.join([str(DIRECTORY), *before])


def main() -> int:
    print(jupyter_config_path(os.environ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
