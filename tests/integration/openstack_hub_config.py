"""Hub config for the OpenStack tests: visa-hub's configuration, then the OpenStack spawner.

Like an operator's config file. The tests pass their knobs as JSON in environment variables:
``VISA_TEST_OPENSTACK`` (OpenStackSpawner traits), ``VISA_TEST_LOG_LEVEL`` and ``VISA_TEST_SERVICE_TOKEN``
(a service that may read spawner state, to check which servers the hub owns).
"""

import json
import os

from visa_hub.hubconfig import configure

c = get_config()  # noqa: F821
configure(c)
# by import path until the visa-openstack entry point is registered in pyproject.toml
c.JupyterHub.spawner_class = "visa-openstack"
c.JupyterHub.log_level = os.environ.get("VISA_TEST_LOG_LEVEL", "INFO")
for name, value in json.loads(os.environ.get("VISA_TEST_OPENSTACK", "{}")).items():
    setattr(c.OpenStackSpawner, name, value)
if os.environ.get("VISA_TEST_SERVICE_TOKEN"):
    c.JupyterHub.services = [{"name": "openstack-test", "api_token": os.environ["VISA_TEST_SERVICE_TOKEN"]}]
    c.JupyterHub.load_roles = [{"name": "openstack-test", "services": ["openstack-test"],
                                "scopes": ["admin:users", "admin:servers", "admin:server_state", "read:metrics"]}]
