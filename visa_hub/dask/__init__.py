"""Dask on the site's Slurm cluster: the session's Dask profiles as dask-jobqueue configuration.

- :mod:`visa_hub.dask.config` (pure): ``VISA_DASK`` → dask config (``jobqueue.slurm``, ``labextension.factory``,
  the dashboard link through the hub's proxy);
- :mod:`visa_hub.dask.instance`: writes that config into the instance when it starts;
- :mod:`visa_hub.dask.clusters`: ``cluster("profile")`` for another allowed profile (needs dask-jobqueue).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ProfileError", "cluster", "profiles"]


def __getattr__(name: str) -> Any:
    # dask-jobqueue is imported only when a notebook asks for a cluster: the hub never needs it
    if name in __all__:
        from . import clusters as module

        return getattr(module, name)
    raise AttributeError(name)
