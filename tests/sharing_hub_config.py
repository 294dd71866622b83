"""Hub config for the sharing tests of the instance side: visa-hub's configuration plus a service that grants shares.

The service (token in ``VISA_TEST_SHARING_TOKEN``) holds what granting a role needs: ``shares``, the names of users,
access to servers and the custom role scopes — the scopes the sessions service has in production. Users
themselves never get ``shares``.
"""

import json
import os

from visa_hub.hubconfig import configure
from visa_hub.sharing.roles import CUSTOM_SCOPES

c = get_config()  # noqa: F821
configure(c)
c.JupyterHub.services.append({"name": "sharing-test", "api_token": os.environ["VISA_TEST_SHARING_TOKEN"]})
c.JupyterHub.load_roles.append({
    "name": "sharing-test", "services": ["sharing-test"],
    "scopes": ["shares", "read:shares", "read:users:name", "access:servers", *CUSTOM_SCOPES],
})
# the tests' knobs for the sessions service's sharing (c.Sharing.*) and its passes
for name, value in json.loads(os.environ.get("VISA_TEST_SHARING", "{}")).items():
    setattr(c.Sharing, name, value)
c.VisaSessions.poll_interval = float(os.environ.get("VISA_TEST_POLL", "2"))
