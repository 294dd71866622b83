"""A Jupyter kernel per app version that ships one, read live from the app catalog.

:class:`AppKernelSpecManager` adds the catalog's kernels to the usual ones. It is the instance's
``ServerApp.kernel_spec_manager_class`` (``visa_hub/singleuser/jupyter_config/jupyter_server_config.json``), so
``GET /api/kernelspecs`` — and with it Lab's launcher — lists a version published a moment ago, without a restart.
A kernel's argv is ``visa-app kernel NAME@VERSION -f {connection_file}``: it checks the image and its digest,
records the launch and runs the kernel inside the container (``apptainer exec --cleanenv IMAGE python3 -m
ipykernel_launcher -f {connection_file}``, or the local runtime).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel
from traitlets import List, Unicode

from ..sitedata import SiteDataError
from .catalog import AppCatalog, AppVersion
from .settings import AppSettings
from .source import CatalogSource

RESOURCES = Path(__file__).with_name("kernel_resources")
PREFIX, USER_PREFIX = "visa-app-", "visa-user-"


def kernel_name(version: AppVersion) -> str:
    prefix = USER_PREFIX if version.user_provided else PREFIX
    return f"{prefix}{version.app}-{version.version}".lower()


def kernel_versions(catalog: AppCatalog, instrument: str | None) -> dict[str, AppVersion]:
    """Kernel name → app version, for every version with a kernel whose app serves the instrument."""
    return {kernel_name(v): v for app in catalog.apps if app.serves(instrument) for v in app.versions if v.kernel}


def kernel_spec_dict(version: AppVersion, command: list[str]) -> dict[str, Any]:
    """The kernel.json of an app version (pure)."""
    assert version.kernel is not None
    return {
        "argv": [*command, "kernel", version.ref, "-f", "{connection_file}"],
        "display_name": version.label,
        "language": version.kernel.language,
        "interrupt_mode": "signal",
        "env": {},
        "metadata": {"visa_app": version.to_dict(), "debugger": False},
    }


class AppKernelSpecManager(KernelSpecManager):
    """The usual kernel specs plus one per app version that ships a kernel (re-read when the catalog changes)."""

    visa_app_command = List(
        Unicode(),
        default_value=[sys.executable, "-m", "visa_hub.apps.cli"],
        config=True,
        help="The command (visa-app) that starts an app's kernel inside its container.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._source = CatalogSource(AppSettings.from_environ())
        self._warned: str | None = None

    def app_kernels(self) -> dict[str, AppVersion]:
        try:
            catalog = self._source.load()
        except SiteDataError as exc:
            if str(exc) != self._warned:
                self.log.error("visa-hub apps: the app catalog cannot be read: %s", exc)
                self._warned = str(exc)
            return {}
        return kernel_versions(catalog, self._source.settings.instrument)

    def find_kernel_specs(self) -> dict[str, str]:
        specs = super().find_kernel_specs()
        specs.update({name: str(RESOURCES) for name in self.app_kernels()})
        return specs

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        version = self.app_kernels().get(kernel_name.lower())
        if version is None:
            return super().get_kernel_spec(kernel_name)
        return KernelSpec(resource_dir=str(RESOURCES), **kernel_spec_dict(version, list(self.visa_app_command)))

    def get_all_specs(self) -> dict[str, Any]:
        specs = {}
        for name, resource_dir in super().find_kernel_specs().items():
            try:
                specs[name] = {"resource_dir": resource_dir, "spec": super().get_kernel_spec(name).to_dict()}
            except (NoSuchKernel, OSError, ValueError) as exc:
                self.log.warning("Error loading kernelspec %r: %s", name, exc)
        for name, version in self.app_kernels().items():
            specs[name] = {"resource_dir": str(RESOURCES),
                           "spec": kernel_spec_dict(version, list(self.visa_app_command))}
        return specs
