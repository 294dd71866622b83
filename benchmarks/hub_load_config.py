"""visa-hub for the load benchmark: the product's configuration, instances replaced by the stand-in server.

Like an operator's config file: ``configure(c)``, then the benchmark's knobs from the environment —
``VISA_BENCH_SINGLEUSER_CMD`` (JSON list: the instance command, the stand-in of visa_hub.testing.standin_lab)
and ``VISA_BENCH_SERVICE_TOKEN`` (a service allowed to read ``/hub/metrics`` and every user). Spawn and stop
requests answer at once (``slow_spawn_timeout`` 0); the driver follows readiness through the progress stream,
as the spawn page does. The same settings are in vanilla_jupyterhub_config.py for the baseline.
"""

import json
import os

from visa_hub.hubconfig import configure

c = get_config()  # noqa: F821
configure(c)
if os.environ.get("VISA_BENCH_SINGLEUSER_CMD"):
    c.Spawner.cmd = json.loads(os.environ["VISA_BENCH_SINGLEUSER_CMD"])
    c.Spawner.args = []
c.JupyterHub.tornado_settings.update({"slow_spawn_timeout": 0, "slow_stop_timeout": 0})  # keeps visa-hub's
if os.environ.get("VISA_BENCH_SERVICE_TOKEN"):
    c.JupyterHub.services.append({"name": "bench", "api_token": os.environ["VISA_BENCH_SERVICE_TOKEN"]})
    c.JupyterHub.load_roles.append({"name": "bench", "services": ["bench"],
                                    "scopes": ["admin:users", "admin:servers", "read:metrics"]})
