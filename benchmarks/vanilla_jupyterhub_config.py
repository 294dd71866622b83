"""Baseline for benchmarks: vanilla JupyterHub with SimpleLocalProcessSpawner on the same machine.

Same ports and data directory conventions as visa-hub's config (VISA_* variables), nothing else of ours.
"""

import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821
data_dir = Path(os.environ["VISA_DATA_DIR"]).resolve()
repo = Path(__file__).resolve().parents[1]
c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ['VISA_HUB_PORT']}"
c.JupyterHub.hub_port = int(os.environ["VISA_HUB_API_PORT"])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['VISA_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [str(repo / "node_modules/.bin/configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(data_dir / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{data_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(data_dir / "cookie_secret")
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = "visa-demo"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(data_dir / "homes" / "{username}")
c.Spawner.cmd = [str(Path(sys.executable).with_name("jupyterhub-singleuser"))]
c.Spawner.args = ["--allow-root"] if os.geteuid() == 0 else []
c.Spawner.default_url = "/lab"

# the load benchmark (hub_load.py): the same stand-in instances and API settings as visa-hub's bench config
if os.environ.get("VISA_BENCH_SINGLEUSER_CMD"):
    import json

    c.Spawner.cmd = json.loads(os.environ["VISA_BENCH_SINGLEUSER_CMD"])
    c.Spawner.args = []
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0, "slow_stop_timeout": 0}
if os.environ.get("VISA_DB_URL"):
    c.JupyterHub.db_url = os.environ["VISA_DB_URL"]
if os.environ.get("VISA_BENCH_SERVICE_TOKEN"):  # reads /hub/metrics after the run
    c.JupyterHub.services = [{"name": "bench", "api_token": os.environ["VISA_BENCH_SERVICE_TOKEN"]}]
    c.JupyterHub.load_roles = [{"name": "bench", "services": ["bench"], "scopes": ["read:metrics"]}]
