"""The same images and launch code with real apptainer (production's runtime).

Apptainer is packaged neither for Debian 12 nor on PyPI, so these tests run wherever it is installed (marked
``apptainer``); elsewhere tests/conftest.py deselects them and says so in the run's header (a deselection, not a
skip: nothing here pretends to have run). The local runtime's tests cover the same paths everywhere.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from apps_support import AppUser, publish, reduce_app, version_entry

pytestmark = [pytest.mark.integration, pytest.mark.apptainer]


@pytest.fixture
def apptainer() -> str:
    path = shutil.which("apptainer")
    assert path, "deselected by tests/conftest.py where apptainer is missing"
    return path


def test_apps_apptainer_runs_the_test_images_as_the_local_runtime_does(apptainer, app_images_built,
                                                                       app_user: AppUser):
    v1, v2 = app_images_built["reduce-1.0"], app_images_built["reduce-2.0"]
    publish(app_user.catalog, "reduce", {"apps": [reduce_app(version_entry(v1, "supported"), version_entry(v2))]})
    for ref, expected in (("reduce", "reduce 2.0.0 (image 2.0, app reduce@2.0)"),
                          ("reduce@1.0", "reduce 1.0.0 (image 1.0, app reduce@1.0)")):
        result = app_user.visa_app("run", ref, "version", VISA_APPS_RUNTIME="apptainer")
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
    written = app_user.visa_app("exec", "reduce@2.0", "sh", "-c", "echo inside > $HOME/apptainer.txt",
                                VISA_APPS_RUNTIME="apptainer")
    assert written.returncode == 0 and (app_user.home / "apptainer.txt").read_text() == "inside\n"


def test_apps_bundle_script_uses_apptainer_where_installed(apptainer, app_images_built, app_user: AppUser,
                                                           tmp_path: Path):
    v1 = app_images_built["reduce-1.0"]
    publish(app_user.catalog, "site", {"cycles": [{"name": "c", "starts": "2000-01-01", "ends": "2100-01-01",
                                                   "pins": {"reduce": "1.0"}}],
                                       "apps": [reduce_app(version_entry(v1))]})
    assert app_user.visa_app("bundle", "-o", str(tmp_path / "b.tar")).returncode == 0
    with tarfile.open(tmp_path / "b.tar") as tar:
        tar.extractall(tmp_path)  # noqa: S202 (our own bundle)
    env = {"PATH": str(Path(apptainer).parent) + ":/usr/bin:/bin", "HOME": str(app_user.home)}
    ran = subprocess.run(["sh", str(tmp_path / "visa-apps-c/run.sh"), "reduce", "version"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0 and "reduce 1.0.0" in ran.stdout, ran.stderr
