"""Shared fixtures: integration requirements, the real hub process, PostgreSQL, the browser."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from hubtest import HubProcess

# openstack_sim / openstack_conn: the OpenStack API simulator in a thread, and an openstacksdk connection to it
pytest_plugins = ["visa_hub.testing.openstack_sim.fixtures", "apps_support"]  # apps: built SIF images, app_user

REQUIRE_INTEGRATION = os.environ.get("VISA_REQUIRE_INTEGRATION") == "1"


APPTAINER = shutil.which("apptainer")


def pytest_report_header(config):
    if not APPTAINER:
        return "apptainer: not installed (not packaged for Debian 12 nor PyPI): tests marked `apptainer` deselected"
    return f"apptainer: {APPTAINER}"


def pytest_collection_modifyitems(config, items):
    """Tests that need real apptainer run wherever it exists; elsewhere they are deselected (visibly), not skipped."""
    if APPTAINER:
        return
    deselected = [item for item in items if item.get_closest_marker("apptainer")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("apptainer")]


def missing_peer(reason: str) -> None:
    """Skip a test whose real peer is missing; under VISA_REQUIRE_INTEGRATION=1 (CI) that is a failure."""
    if REQUIRE_INTEGRATION:
        pytest.fail(f"required integration peer missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_module(name: str, hint: str) -> ModuleType:
    """Import a module a test needs; if it cannot be imported, that is a missing peer (never a silent skip)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing_peer(f"{name} cannot be imported ({exc}); {hint}")
        raise  # not reached: missing_peer fails or skips


def need_proxy() -> None:
    """A missing peer unless configurable-http-proxy is installed (``npm install`` here, or on PATH)."""
    if not (Path(HubProcess.config_file).parent / "node_modules/.bin/configurable-http-proxy").exists() \
            and not shutil.which("configurable-http-proxy"):
        missing_peer("configurable-http-proxy not installed (run `npm install`)")


def stop_hubs(hubs: list) -> None:
    """Stop these hubs and the instances they leave behind."""
    for hub in hubs:
        hub.stop()
        hub.kill_instances()


def slurm_peer(user: str, modules: tuple[str, ...], **cluster_options):
    """A Slurm cluster (tests/peers_slurm.py) for a module fixture to ``yield from``: a missing Slurm is a missing
    peer; a Python that ``user`` cannot run with ``modules`` fails the test."""
    from peers_slurm import check_usable_by, slurm_cluster, slurm_missing

    reason = slurm_missing()
    if reason:
        missing_peer(reason)
    problem = check_usable_by(user, modules=modules)
    if problem:
        pytest.fail(problem, pytrace=False)
    with slurm_cluster(**cluster_options) as cluster:
        yield cluster


@pytest.fixture
def start_hub(tmp_path: Path):
    """Factory: start real ``jupyterhub -f jupyterhub_config.py`` processes; all are stopped afterwards."""
    started: list[HubProcess] = []

    def start(data_dir: Path | None = None, config_file: Path | None = None, **env: str) -> HubProcess:
        need_proxy()
        hub = HubProcess(data_dir or tmp_path / "data", extra_env=env)
        if config_file is not None:  # a test's own config file (visa-hub's configure() plus what it needs)
            hub.config_file = config_file
        started.append(hub)
        return hub.start()

    yield start
    stop_hubs(started)


@pytest.fixture(scope="session")
def postgres_url():
    from peers_postgres import postgres_bin, postgres_server

    if postgres_bin() is None:
        missing_peer("PostgreSQL server not installed (apt-get install postgresql)")
    with postgres_server() as url:
        yield url


CHROMIUM = os.environ.get("VISA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (never a downloaded browser).

    Module-scoped: Playwright's sync API keeps an event loop running, which must be gone before
    pytest-asyncio's tests in other modules run.
    """
    if not Path(CHROMIUM).exists():
        missing_peer(f"{CHROMIUM} not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_peer("playwright not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, tmp_path):
    """A fresh browser context (no cookies) and page; a screenshot is kept in the test's tmp dir."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    try:
        page.screenshot(path=str(tmp_path / "last-page.png"))
    finally:
        context.close()


@pytest.fixture(scope="session")
def vm_sandbox() -> None:
    """What the OpenStack simulator's VMs need: bubblewrap, and root (user_data runs as root and drops to a uid)."""
    from visa_hub.testing.openstack_sim.sandbox import SandboxUnavailable, check_available

    try:
        check_available()
    except SandboxUnavailable as exc:
        missing_peer(f"simulated VMs cannot run: {exc}")


@pytest.fixture(scope="session")
def instance_env(vm_sandbox) -> Path:
    """The instance environment (scripts/provision-instance.sh), provisioned once and cached under .cache/."""
    from visa_hub.testing.instance_env import ensure_instance_env

    if not Path("/usr/bin/python3").exists():
        missing_peer("/usr/bin/python3 (with python3-venv) is needed to provision the instance environment")
    return ensure_instance_env()


@pytest.fixture
def cloud(request: pytest.FixtureRequest, tmp_path: Path, instance_env: Path):
    """The OpenStack simulator seeded like the demo catalog, its VM image holding the instance environment;
    ``@pytest.mark.cloud_boot_delay(s)`` sets its boot time."""
    from openstack_support import start_cloud  # tests/integration, importable once its tests are collected

    marker = request.node.get_closest_marker("cloud_boot_delay")
    cloud = start_cloud(tmp_path, boot_delay=marker.args[0] if marker else 0.3, instance_env=instance_env)
    yield cloud
    cloud.thread.stop()


@pytest.fixture
def hubs():
    """Hub processes a test starts itself (with its own config file); all are stopped afterwards."""
    started: list[HubProcess] = []
    yield started
    for hub in started:
        hub.stop()


@pytest.fixture
def inprocess_hub(tmp_path: Path):
    """Factory: visa-hub's hub in this test process (JupyterHub's MockHub on its own thread, see
    tests/inprocess_hub.py), for authenticator, spawner and hub-page behaviour; stopped afterwards with its
    instances."""
    from inprocess_hub import InProcessHub

    started: list[InProcessHub] = []

    def start(data_dir: Path | None = None, more_config=None, **env: str) -> InProcessHub:
        need_proxy()
        hub = InProcessHub(data_dir or tmp_path / "data", extra_env=env, more_config=more_config)
        started.append(hub)
        return hub.start()

    yield start
    stop_hubs(started)
