"""Local backend: one JupyterLab process per instance on this machine (the embedded demo and development).

Built on JupyterHub's :class:`~jupyterhub.spawner.SimpleLocalProcessSpawner` (processes run as the hub's
user; no isolation between users — for demos and development only). Each user has one persistent home under
``data_dir/homes/<user>`` that survives stop/start and that all her instances share; each instance (a named
server) has its own process, whose id lives in its spawner state, so a restarted hub re-attaches to every
running instance; its server extension gives each its own Dask configuration in that home (as on every backend,
see :mod:`visa_hub.dask.instance`).
"""

from __future__ import annotations

from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from jupyterhub.utils import url_escape_path
from traitlets import Unicode, default

from visa_hub.metrics import timed_spawn

from .base import ThisMachineSingleuser, VisaSpawnerMixin
from .ports import LOCAL_PORTS


class LocalSpawner(VisaSpawnerMixin, ThisMachineSingleuser, SimpleLocalProcessSpawner):
    """Experiment-aware JupyterLab as a local process."""

    data_dir = Unicode(
        "data",
        config=True,
        help="Directory for instance data; users' persistent homes are <data_dir>/homes/<username>.",
    )

    @default("home_dir")
    def _home_dir_default(self) -> str:
        # escaped: a username can never name a path outside the homes directory
        safe_name = url_escape_path(self.user.name).replace("/", "%2F")
        return str((Path(self.data_dir) / "homes" / safe_name).resolve())

    @timed_spawn
    async def start(self):
        plan = await self.prepare_session()
        home = Path(self.home_dir)
        existed = home.exists()
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.progress_log.emit(
            30, f"{'Using your persistent home' if existed else 'Creating your persistent home'} ({home.name})"
        )
        self.progress_log.emit(50, f"Starting JupyterLab for experiment {plan.experiment.code}")
        self._claim_port()
        try:
            url = await super().start()
        except BaseException:
            self._release_port()
            raise
        self.progress_log.emit(70, "Waiting for JupyterLab to answer")
        return url

    # -- ports: one per running instance, never two instances on one (see spawners.ports) ------------------
    _claimed_port = 0

    def _claim_port(self) -> None:
        if self.port == 0 or self.port == self._claimed_port:  # not a port the operator fixed
            self._release_port()
            self.port = self._claimed_port = LOCAL_PORTS.claim(self._port_holder)

    def _release_port(self) -> None:
        if self._claimed_port:
            LOCAL_PORTS.release(self._port_holder, self._claimed_port)

    @property
    def _port_holder(self) -> str:
        return f"{self.user.name}/{self.name}"

    async def stop(self, now: bool = False) -> None:
        try:
            await super().stop(now=now)
        finally:
            self._release_port()
