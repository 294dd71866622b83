"""Apps test support: real SIF images built once per test session from Debian packages, catalogs, visa-app.

The images come from ``containers/test-images/*.yaml`` through :mod:`visa_hub.testing.app_images` (mksquashfs +
siftool); the build times are kept in ``BUILD_TIMES`` and printed at the end of the session.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from jupyter_server_process import JupyterServer, execute_code, launch_jupyter_server
from visa_hub.testing import app_images

VISA_APP = [sys.executable, "-m", "visa_hub.apps.cli"]
BUILD_TIMES: dict[str, float] = {}
TEST_IMAGES = ("reduce-1.0", "reduce-2.0", "viewer-1.0", "mytool-0.1")


def require_local_runtime() -> None:
    from conftest import missing_peer

    missing = app_images.missing_tools() + [t for t in ("squashfuse", "bwrap", "unsquashfs") if not shutil.which(t)]
    if missing:
        missing_peer(f"apps tools not installed: {', '.join(missing)} (scripts/install-apps.sh)")
    if not Path("/dev/fuse").exists():
        missing_peer("/dev/fuse is missing: squashfuse cannot mount images")


@dataclass(frozen=True)
class BuiltImage:
    name: str
    version: str
    path: Path
    digest: str


@pytest.fixture(scope="session")
def app_images_built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltImage]:
    """The test images as real SIF files (built once per session; the package root file system is cached)."""
    require_local_runtime()
    folder = tmp_path_factory.mktemp("app-images")
    # VISA_TEST_APP_IMAGE_CACHE keeps the packages' root file system between sessions (a developer's choice)
    cache = Path(os.environ.get("VISA_TEST_APP_IMAGE_CACHE") or tmp_path_factory.mktemp("app-image-cache"))
    built = {}
    for stem in TEST_IMAGES:
        recipe = app_images.Recipe.load(app_images.RECIPES / f"{stem}.yaml")
        started = time.monotonic()
        digest = app_images.build_image(recipe, folder / f"{stem}.sif", cache)
        BUILD_TIMES[stem] = time.monotonic() - started
        built[stem] = BuiltImage(recipe.name, recipe.version, folder / f"{stem}.sif", digest)
    return built


def session_json(experiment: str = "LOKI-2026-042", instrument: str = "LoKI", gpus: int = 0,
                 user: str = "alice") -> str:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return json.dumps({
        "username": user,
        "experiment": {"code": experiment, "title": "Lipid membranes under shear", "instrument": instrument,
                       "starts_at": (now - dt.timedelta(days=1)).isoformat(),
                       "ends_at": (now + dt.timedelta(days=2)).isoformat()},
        "instrument": instrument, "flavour": {"name": "large", "cpus": 4, "memory_gb": 16, "gpus": gpus},
        "image": "ess-analysis-2026.10", "dask_profiles": ["standard"], "default_dask_profile": "standard",
        "starts_at": now.isoformat(), "expires_at": (now + dt.timedelta(hours=12)).isoformat(),
    })


def version_entry(image: BuiltImage, status: str = "current", **extra) -> dict:
    return {"version": image.version, "image": str(image.path), "digest": image.digest, "status": status, **extra}


def publish(catalog_dir: Path, name: str, document: dict) -> Path:
    """Write one catalog file atomically, as a publisher on shared storage would."""
    catalog_dir.mkdir(parents=True, exist_ok=True)
    path = catalog_dir / f"{name}.yaml"
    temporary = catalog_dir / f".{name}.yaml.new"
    temporary.write_text(yaml.safe_dump(document, sort_keys=False))
    temporary.replace(path)
    return path


def reduce_app(*versions: dict, instruments: list[str] | None = None) -> dict:
    app = {"name": "reduce", "title": "Reduce", "kind": "kernel", "kernel": {"language": "python"},
           "versions": list(versions)}
    if instruments:
        app["instruments"] = instruments
    return app


@dataclass
class AppUser:
    """A person's environment on an instance: home, session, catalog location."""

    home: Path
    catalog: Path
    session: str

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("VISA_", "JUPYTER"))}
        return {**base, "HOME": str(self.home), "VISA_APPS_CATALOG": str(self.catalog),
                "VISA_APPS_RUNTIME": "local", "VISA_SESSION": self.session, "USER": "alice", **extra}

    def visa_app(self, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*VISA_APP, *args], env=self.env(**extra), capture_output=True, text=True,
                              timeout=timeout, cwd=self.home)

    def start(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*VISA_APP, *args], env=self.env(**extra), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=self.home)

    @property
    def records(self) -> Path:
        return self.home / ".local/share/visa-hub/provenance"


@pytest.fixture
def app_user(tmp_path: Path) -> AppUser:
    home = tmp_path / "home"
    home.mkdir()
    return AppUser(home=home, catalog=tmp_path / "catalog", session=session_json())


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- a Jupyter server as an instance runs it ---------------------------------------------------------------
INSTANCE_CONFIG = Path(__file__).resolve().parents[1] / "visa_hub" / "singleuser" / "jupyter_config"


def start_instance_server(tmp: Path, user: AppUser, args: tuple[str, ...] = ()) -> JupyterServer:
    """``jupyter server`` as an instance runs it: visa-hub's instance config, her session, the app catalog."""
    env = {"JUPYTER_CONFIG_PATH": str(INSTANCE_CONFIG), "HOME": str(user.home), "VISA_SESSION": user.session,
           "VISA_APPS_CATALOG": str(user.catalog), "VISA_APPS_RUNTIME": "local", "USER": "alice",
           "JUPYTERHUB_USER": "alice"}
    tmp.mkdir(parents=True, exist_ok=True)
    return launch_jupyter_server(tmp, root=user.home, env=env, args=args).wait_until_up(60)


def post(server: JupyterServer, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers={"Authorization": f"token {server.token}"}, timeout=120)


def kernel_specs(server: JupyterServer) -> dict:
    response = server.get("api/kernelspecs")
    response.raise_for_status()
    return response.json()["kernelspecs"]


def run_code(server: JupyterServer, kernel_id: str, code: str, timeout: float = 120) -> str:
    """Execute ``code`` in a kernel over Lab's websocket; the text it printed or returned."""
    answers = execute_code(server.ws_url(f"api/kernels/{kernel_id}/channels"), server.token, code, timeout=timeout)
    return "".join(content["text"] if kind == "stream" else content["data"]["text/plain"]
                   for kind, content in answers if kind in ("stream", "execute_result"))


def pytest_terminal_summary(terminalreporter) -> None:
    if BUILD_TIMES:
        times = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in BUILD_TIMES.items())
        terminalreporter.write_line(f"apps: test images built from Debian packages: {times}")
