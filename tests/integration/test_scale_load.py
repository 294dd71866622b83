"""Fifty people log in, start an instance, reach it through the proxy and stop it, 25 at a time.

The load driver of ``benchmarks/hub_load.py`` against a real visa-hub process (demo login, the site's rules,
local instances; the instances are the stand-in server of visa_hub.testing.standin_lab, so that 50 fit on a CI
machine). No timing is asserted here — the benchmark compares timings with vanilla JupyterHub — only that
nobody met an error and that every person reached her own instance.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
from conftest import missing_peer

from hubtest import REPO

pytestmark = pytest.mark.integration


def load_driver():
    spec = importlib.util.spec_from_file_location("hub_load", REPO / "benchmarks" / "hub_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["hub_load"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_scale_50_people_each_reach_their_own_instance(tmp_path: Path):
    if not (REPO / "node_modules/.bin/configurable-http-proxy").exists() and not shutil.which(
            "configurable-http-proxy"):
        missing_peer("configurable-http-proxy not installed (run `npm install`)")
    hub_load = load_driver()
    names = hub_load.usernames(50)
    results = hub_load.run_hub("visa-hub", tmp_path, names, concurrency=25, think=0.05, timeout=120)
    print(hub_load.report([results], len(names), 25))
    assert results.errors == []
    assert results.reached == set(names)  # each answered by the instance started for her, through the proxy
    assert len(results.latencies["spawn_ready"]) == len(results.latencies["stopped"]) == 50
