"""OpenStack backend: instances are VMs created with openstacksdk (entry point ``visa-openstack``).

Modules: :mod:`.spawner` (the Spawner), :mod:`.fleet` (what all spawners of a hub share), :mod:`.homes`
(where her home and experiment data live), :mod:`.cloud` (connections on worker threads, retries),
:mod:`.poller` (one list call per cycle), :mod:`.reaper` (servers nobody owns), :mod:`.userdata` (the
instance's start-up script), :mod:`.errors` (messages for people), :mod:`.redact` (no secrets in the hub log).
"""

from .spawner import OpenStackSpawner

__all__ = ["OpenStackSpawner"]
