"""The app catalog: validation errors naming file and key, defaults and cycle pins, her own images, binds."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from visa_hub.apps.catalog import AppError, load_site_catalog, load_user_apps, version_key, with_user_apps
from visa_hub.apps.kernelspecs import kernel_spec_dict, kernel_versions
from visa_hub.apps.launch import app_command, site_mounts
from visa_hub.apps.menu import desktop_entries, openbox_pipe_menu
from visa_hub.apps.provenance import add_launch, new_record, record_id
from visa_hub.apps.settings import AppSettings
from visa_hub.sitedata import SiteDataError

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def write(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def site(tmp_path: Path, **extra) -> dict:
    return {"apps": [{"name": "reduce", "title": "Reduce", "kind": "kernel", "kernel": {"language": "python"},
                      "instruments": ["LoKI"],
                      "versions": [{"version": "1.0", "image": "reduce-1.0.sif", "digest": D1, "status": "supported"},
                                   {"version": "2.0", "image": "/cvmfs/reduce-2.0.sif", "digest": D2}]}], **extra}


def settings(tmp_path: Path, catalog: Path, **session) -> AppSettings:
    body = {"experiment": {"code": "LOKI-2026-042", "instrument": "LoKI", "starts_at": "2026-08-01T00:00:00+00:00"},
            "instrument": "LoKI", "flavour": {"name": "gpu-large", "gpus": session.pop("gpus", 0)},
            "starts_at": "2026-08-02T10:00:00+00:00", **session}
    return AppSettings(catalog_locations=(str(catalog),), home=tmp_path / "home", user="alice", session=body)


@pytest.mark.parametrize(("change", "where", "problem"), [
    (lambda d: d["apps"][0].update(kind="gui"), "apps[0].kind", "must be one of command, desktop, kernel"),
    (lambda d: d["apps"][0]["versions"][1].pop("digest"), "apps[0].versions[1].digest", "is required"),
    (lambda d: d["apps"][0]["versions"][0].update(status="old"), "apps[0].versions[0].status", "must be one of"),
    (lambda d: d["apps"][0].update(name="Reduce It"), "apps[0].name", "must be lower-case"),
    (lambda d: d["apps"][0]["versions"].append(dict(d["apps"][0]["versions"][0])), "apps[0].versions[2].version",
     "duplicate version '1.0'"),
    (lambda d: d["apps"][0].update(colour="red"), "apps[0].colour", "unknown key"),
    (lambda d: d["apps"][0].pop("kernel"), "apps[0].kernel", "is required for kind kernel"),
    (lambda d: d.update(cycles=[{"name": "2026-II", "starts": "2026-07-01", "ends": "2026-12-31",
                                 "pins": {"reduce": "3.0"}}]), "cycles[0].pins.reduce", "has no version '3.0'"),
    (lambda d: d.update(binds=[{"source": "/data", "target": "data"}]), "binds[0].target", "must be an absolute"),
])
def test_apps_catalog_errors_name_file_and_key(tmp_path, change, where, problem):
    document = site(tmp_path)
    change(document)
    path = write(tmp_path / "apps.yaml", document)
    with pytest.raises(SiteDataError) as caught:
        load_site_catalog([path])
    assert str(caught.value).startswith(f"{path}: {where}: ") and problem in str(caught.value)


def test_apps_catalog_directory_merges_files_and_refuses_duplicates(tmp_path):
    folder = tmp_path / "catalog"
    write(folder / "reduce.yaml", site(tmp_path))
    write(folder / "viewer.yaml", {"apps": [{"name": "viewer", "kind": "desktop", "versions": [
        {"version": "1.0", "image": "v.sif", "digest": D1}]}]})
    catalog = load_site_catalog([folder])
    assert [a.name for a in catalog.apps] == ["reduce", "viewer"]
    assert catalog.app("reduce").version("1.0").image == folder / "reduce-1.0.sif"  # relative to its file
    write(folder / "again.yaml", {"apps": [{"name": "viewer", "versions": [
        {"version": "2.0", "image": "v.sif", "digest": D1}]}]})
    with pytest.raises(SiteDataError, match=r"viewer.yaml: apps\[0\].name: duplicate app 'viewer' \(also in .*again"):
        load_site_catalog([folder])


def test_apps_default_version_is_the_cycle_pin_else_the_newest_current(tmp_path):
    cycles = [{"name": "2026-I", "starts": "2026-01-01", "ends": "2026-06-30", "pins": {"reduce": "1.0"}},
              {"name": "2026-II", "starts": "2026-07-01", "ends": "2026-12-31", "pins": {}}]
    catalog = load_site_catalog([write(tmp_path / "a.yaml", site(tmp_path, cycles=cycles))])
    spring, autumn = catalog.cycle_for(dt.date(2026, 3, 1)), catalog.cycle_for(dt.date(2026, 9, 1))
    assert catalog.resolve("reduce", spring).version == "1.0"
    assert catalog.resolve("reduce", autumn).version == "2.0"
    assert catalog.resolve("reduce@1.0", autumn).version == "1.0"
    with pytest.raises(AppError, match=r"reduce has no version '9'. Versions: 1.0, 2.0."):
        catalog.resolve("reduce@9")
    with pytest.raises(AppError, match=r"There is no app named 'nope'. Apps: reduce."):
        catalog.resolve("nope")
    assert sorted(["2.10", "2.9", "10.0", "2.9.1"], key=version_key) == ["2.9", "2.9.1", "2.10", "10.0"]


def test_apps_user_images_are_marked_and_cannot_shadow_site_apps(tmp_path):
    catalog = load_site_catalog([write(tmp_path / "a.yaml", site(tmp_path))])
    mine = write(tmp_path / "home/.config/visa-hub/apps.yaml", {"apps": [
        {"name": "mytool", "title": "My tool", "versions": [{"version": "0.1", "image": "~/mytool.sif"}]},
        {"name": "reduce", "versions": [{"version": "5", "image": "/x.sif"}]}]})
    apps, problems = load_user_apps(mine, catalog, home=tmp_path / "home")
    assert [a.name for a in apps] == ["mytool"]
    assert apps[0].versions[0].image == tmp_path / "home/mytool.sif"
    assert apps[0].versions[0].label == "My tool 0.1 (your image)"
    assert len(problems) == 1 and "'reduce' is also a site app" in problems[0] and "apps[1].name" in problems[0]
    merged = with_user_apps(catalog, apps, problems)
    assert merged.resolve("mytool").user_provided and not merged.resolve("reduce").user_provided
    broken = tmp_path / "broken.yaml"
    broken.write_text("apps: [")
    assert load_user_apps(broken, catalog)[1][0].startswith(f"Your registered apps could not be read: {broken}")


def test_apps_kernel_specs_menus_and_binds_follow_the_session(tmp_path):
    binds = [{"source": str(tmp_path / "data/{instrument_lower}/{experiment}"), "target": "/data/{experiment}"},
             {"source": "/nonexistent/{experiment}", "target": "/scratch", "mode": "rw"}]
    path = write(tmp_path / "a.yaml", site(tmp_path, binds=binds))
    (tmp_path / "data/loki/LOKI-2026-042").mkdir(parents=True)
    catalog = load_site_catalog([path])
    loki = settings(tmp_path, path)
    mounts, skipped = site_mounts(catalog, loki)
    assert [(m.source, m.target, m.writable) for m in mounts] == [
        (str(tmp_path / "data/loki/LOKI-2026-042"), "/data/LOKI-2026-042", False)]
    assert skipped == ["/nonexistent/LOKI-2026-042 does not exist here"]

    kernels = kernel_versions(catalog, "LoKI")
    assert sorted(kernels) == ["visa-app-reduce-1.0", "visa-app-reduce-2.0"]
    assert kernel_versions(catalog, "ODIN") == {}
    spec = kernel_spec_dict(kernels["visa-app-reduce-1.0"], ["visa-app"])
    assert spec["argv"] == ["visa-app", "kernel", "reduce@1.0", "-f", "{connection_file}"]
    assert spec["display_name"] == "Reduce 1.0 (supported)" and spec["language"] == "python"

    entries = desktop_entries(catalog, "LoKI", ["visa-app"])
    assert set(entries) == {"visa-app-reduce-1.0.desktop", "visa-app-reduce-2.0.desktop"}
    assert "Exec=visa-app run reduce@2.0" in entries["visa-app-reduce-2.0.desktop"]
    menu = openbox_pipe_menu(catalog, "LoKI", ["visa-app"])
    assert "<execute>xterm -hold -e visa-app run reduce@1.0</execute>" in menu
    assert app_command(catalog.resolve("reduce"), ["a"]) == (("a",), True)


def test_apps_provenance_record_is_built_per_session(tmp_path):
    path = write(tmp_path / "a.yaml", site(tmp_path))
    catalog = load_site_catalog([path])
    alice = settings(tmp_path, path, gpus=1, image="ess-analysis-2026.10", dask_profiles=["standard"])
    assert alice.gpu
    assert record_id(alice) == "LOKI-2026-042-20260802T100000-alice"
    now = dt.datetime(2026, 8, 2, 11, tzinfo=dt.UTC)
    record = new_record(alice, now)
    v1, v2 = catalog.resolve("reduce@1.0"), catalog.resolve("reduce@2.0")
    record = add_launch(record, v1, D1, "kernel", ["python3"], now)
    record = add_launch(record, v2, D2, "run", ["version"], now, runscript=True)
    record = add_launch(record, v1, D1, "run", [], now, runscript=True)
    assert [(a["app"], a["version"], a["digest"], len(a["launches"])) for a in record["apps"]] == [
        ("reduce", "1.0", D1, 2), ("reduce", "2.0", D2, 1)]
    assert record["session"]["instance_image"] == "ess-analysis-2026.10"
    assert record["session"]["dask_profiles"] == ["standard"] and record["session"]["flavour"]["gpus"] == 1
    json.dumps(record)  # machine-readable as it is


def test_apps_example_catalog_in_containers_is_valid():
    example = Path(__file__).resolve().parents[2] / "containers" / "catalog.example.yaml"
    catalog = load_site_catalog([example])
    assert catalog.cycle("2026-II").pins["julia-fit"] == "1.0"
    assert catalog.resolve("julia-fit").kernel.argv[0] == "julia"
