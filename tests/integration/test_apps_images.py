"""Test images built from Debian packages into real SIF files: reproducible digests, what siftool sees, sandboxes."""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from pathlib import Path

import pytest

from apps_support import AppUser, publish, require_local_runtime
from visa_hub.apps.images import sandbox_digest
from visa_hub.apps.sif import read_partition
from visa_hub.testing import app_images

pytestmark = pytest.mark.integration


def test_apps_building_the_same_image_twice_gives_the_same_digest(tmp_path: Path):
    require_local_runtime()
    recipe = app_images.Recipe.load(app_images.RECIPES / "reduce-1.0.yaml")
    digests, seconds = [], []
    for attempt in ("first", "second"):  # separate caches: nothing is shared between the two builds
        started = time.monotonic()
        digests.append(app_images.build_image(recipe, tmp_path / f"{attempt}.sif", tmp_path / f"cache-{attempt}"))
        seconds.append(time.monotonic() - started)
    print(f"apps: reduce-1.0 built from scratch in {seconds[0]:.1f} s and {seconds[1]:.1f} s")
    assert digests[0] == digests[1]
    first, second = (tmp_path / "first.sif").read_bytes(), (tmp_path / "second.sif").read_bytes()
    assert first != second, "SIF headers carry a random id: the files differ, the partition must not"

    # the digest is the sha256 of the squashfs partition, as siftool sees it
    dumped = subprocess.run(["siftool", "dump", "1", str(tmp_path / "first.sif")], capture_output=True, check=True)
    assert digests[0] == "sha256:" + hashlib.sha256(dumped.stdout).hexdigest()
    info = subprocess.run(["siftool", "info", "1", str(tmp_path / "first.sif")], capture_output=True, text=True,
                          check=True).stdout
    partition = read_partition(tmp_path / "first.sif")
    assert f"Offset:           {partition.offset}" in info and f"Size:             {partition.size}" in info
    assert re.search(r"Filesystem Type:\s+Squashfs", info) and re.search(r"Partition Type:\s+\*System", info)
    assert partition.arch == "amd64"

    other = app_images.Recipe.load(app_images.RECIPES / "reduce-2.0.yaml")
    assert app_images.build_image(other, tmp_path / "v2.sif", tmp_path / "cache-first") != digests[0]


def test_apps_sandbox_directory_runs_and_has_a_stable_digest(app_user: AppUser, tmp_path: Path):
    require_local_runtime()
    recipe = app_images.Recipe.load(app_images.RECIPES / "mytool-0.1.yaml")
    sandbox = app_images.build_sandbox(recipe, tmp_path / "mytool-sandbox", tmp_path / "cache")
    digest = sandbox_digest(sandbox)
    assert digest == sandbox_digest(app_images.build_sandbox(recipe, tmp_path / "again", tmp_path / "cache2"))
    publish(app_user.catalog, "tools", {"apps": [{"name": "mytool", "kind": "command", "versions": [
        {"version": "0.1", "image": str(sandbox), "digest": digest}]}]})
    ran = app_user.visa_app("run", "mytool", "from", "a", "sandbox")
    assert ran.returncode == 0, ran.stderr
    assert (app_user.home / "mytool-out.txt").read_text() == "from a sandbox\n"
    (sandbox / "opt/mytool/README").write_text("changed\n")
    changed = app_user.visa_app("run", "mytool")
    assert changed.returncode == 2 and str(sandbox) in changed.stderr and "does not match" in changed.stderr
