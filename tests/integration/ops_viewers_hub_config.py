"""Hub config for the desktop viewers tests: the sharing tests' hub (tests/sharing_hub_config.py), a service that
may scrape ``/hub/metrics`` (token in ``VISA_TEST_METRICS_TOKEN``), and a short poll of the instances, so that the
hub notices within seconds an instance that died."""

import os
from pathlib import Path

c = get_config()  # noqa: F821
load_subconfig(str(Path(__file__).resolve().parents[1] / "sharing_hub_config.py"))  # noqa: F821
c.JupyterHub.services.append({"name": "metrics-test", "api_token": os.environ["VISA_TEST_METRICS_TOKEN"]})
c.JupyterHub.load_roles.append({"name": "metrics-test", "services": ["metrics-test"], "scopes": ["read:metrics"]})
c.Spawner.poll_interval = 2
