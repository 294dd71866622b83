"""An OpenStack API simulator (Keystone v3, Nova, Glance, Neutron, Cinder subset) driven by the real openstacksdk.

Servers get 127.x addresses and run their ``user_data`` as local processes;
boot delays, quotas and faults are injectable. See :class:`OpenStackSimulator`
(asyncio) and :class:`SimulatorThread` (for synchronous callers such as openstacksdk).
"""

from .app import OpenStackSimulator
from .faults import FaultRule, Faults, RequestStats
from .state import Quota
from .thread import SimulatorThread

__all__ = ["FaultRule", "Faults", "OpenStackSimulator", "Quota", "RequestStats", "SimulatorThread"]
