"""visa-app with real SIF images and the local runtime (squashfuse + bubblewrap): live catalog updates, her own
images, clear errors, proposal-cycle bundles, provenance and reproduce."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from apps_support import VISA_APP as VISA_APP_COMMAND
from apps_support import AppUser, publish, reduce_app, stop, version_entry
from hubtest import wait_until

pytestmark = pytest.mark.integration


def test_apps_v2_published_while_v1_runs(app_images_built, app_user: AppUser):
    v1, v2 = app_images_built["reduce-1.0"], app_images_built["reduce-2.0"]
    publish(app_user.catalog, "reduce", {"apps": [reduce_app(version_entry(v1))]})
    listed = app_user.visa_app("list")
    assert listed.returncode == 0, listed.stderr
    assert "reduce@1.0*" in listed.stdout and "reduce@2.0" not in listed.stdout

    out = app_user.home / "v1-watch.txt"
    watcher = app_user.start("run", "reduce@1.0", "watch", str(out), "60")
    try:
        wait_until(lambda: out.exists() and out.read_text().count("1.0.0") >= 2, 30, "the v1 process to write")

        publish(app_user.catalog, "reduce", {"apps": [reduce_app(version_entry(v1, "supported"),
                                                                 version_entry(v2))]})
        published = time.monotonic()
        wait_until(lambda: "reduce@2.0*" in app_user.visa_app("list").stdout, 5, "visa-app list to show v2")
        assert time.monotonic() - published < 5

        lines_then = out.read_text().count("\n")
        wait_until(lambda: out.read_text().count("\n") >= lines_then + 5, 10, "the v1 process to keep writing")
        assert watcher.poll() is None, "the v1 process stopped when v2 was published"
        assert set(out.read_text().split()) == {"1.0.0"}, "the running v1 process saw another environment"

        default = app_user.visa_app("run", "reduce", "version")
        explicit_v1 = app_user.visa_app("run", "reduce@1.0", "version")
        assert default.returncode == 0 and explicit_v1.returncode == 0, default.stderr + explicit_v1.stderr
        assert "reduce 2.0.0 (image 2.0, app reduce@2.0)" in default.stdout
        assert "reduce 1.0.0 (image 1.0, app reduce@1.0)" in explicit_v1.stdout
        only_v2 = app_user.visa_app("exec", "reduce@2.0", "python3", "-c",
                                    "import essreduce_demo; print(essreduce_demo.__version__)")
        assert only_v2.stdout.strip() == "2.0.0", only_v2.stderr
    finally:
        stop(watcher)
    assert not any(Path(line.split()[1]).is_relative_to(app_user.home)
                   for line in Path("/proc/self/mounts").read_text().splitlines()), "a mount was left behind"


def test_apps_cycle_pins_the_default_and_the_session_instrument_filters(app_images_built, app_user: AppUser):
    v1, v2 = app_images_built["reduce-1.0"], app_images_built["reduce-2.0"]
    viewer = app_images_built["viewer-1.0"]
    publish(app_user.catalog, "site", {
        "cycles": [{"name": "now", "starts": "2000-01-01", "ends": "2100-01-01", "pins": {"reduce": "1.0"}}],
        "apps": [reduce_app(version_entry(v1), version_entry(v2)),
                 {"name": "viewer", "title": "Viewer", "kind": "desktop", "instruments": ["ODIN"],
                  "versions": [version_entry(viewer)]}],
    })
    listed = app_user.visa_app("list")
    assert "(cycle now)" in listed.stdout and "reduce@1.0*" in listed.stdout
    assert "viewer" not in listed.stdout, "an ODIN app is offered on a LoKI instance"
    assert "viewer@1.0" in app_user.visa_app("list", "--all").stdout
    assert "reduce 1.0.0" in app_user.visa_app("run", "reduce", "version").stdout


def test_apps_user_provided_image_launches_and_is_marked(app_images_built, app_user: AppUser):
    publish(app_user.catalog, "reduce", {"apps": [reduce_app(version_entry(app_images_built["reduce-1.0"]))]})
    mine = app_user.home / "images" / "mytool.sif"
    mine.parent.mkdir()
    shutil.copy(app_images_built["mytool-0.1"].path, mine)
    registered = app_user.visa_app("register", str(mine), "--name", "mytool", "--version", "0.1", "--title", "My tool")
    assert registered.returncode == 0, registered.stderr
    listed = app_user.visa_app("list", "--json")
    mytool = next(a for a in json.loads(listed.stdout)["apps"] if a["app"] == "mytool")
    assert mytool["user_provided"] and mytool["label"] == "My tool 0.1 (your image)"
    assert "your image" in app_user.visa_app("list").stdout
    menu = app_user.visa_app("menu", "--openbox").stdout
    assert 'label="My tool 0.1 (your image)"' in menu and "run mytool@0.1" in menu
    items = {item.get("label"): item.find("action/execute").text
             for item in ElementTree.fromstring(menu).iter("item")}  # what openbox reads
    assert items["My tool 0.1 (your image)"].endswith("visa_hub.apps.cli run mytool@0.1")

    ran = app_user.visa_app("run", "mytool", "hello", "from", "her", "image")
    assert ran.returncode == 0, ran.stderr
    assert "mytool 0.1: my own tool 0.1" in ran.stdout
    assert (app_user.home / "mytool-out.txt").read_text() == "hello from her image\n", "her home is not bound"

    refused = app_user.visa_app("register", str(mine), "--name", "reduce", "--version", "9")
    assert refused.returncode == 2 and "'reduce' is a site app" in refused.stderr


def test_apps_broken_missing_and_changed_images_give_clear_errors(app_images_built, app_user: AppUser, tmp_path):
    good = app_images_built["reduce-1.0"]
    corrupt = tmp_path / "corrupt.sif"
    corrupt.write_bytes(good.path.read_bytes()[: good.path.stat().st_size // 2])
    garbage = tmp_path / "garbage.sif"
    garbage.write_bytes(b"this is not an image\n" * 100)
    other = app_images_built["reduce-2.0"]
    publish(app_user.catalog, "reduce", {"apps": [reduce_app(
        {"version": "1.1", "image": str(corrupt), "digest": good.digest},
        {"version": "1.2", "image": str(tmp_path / "gone.sif"), "digest": good.digest},
        {"version": "1.3", "image": str(other.path), "digest": good.digest},
        {"version": "1.4", "image": str(garbage), "digest": good.digest},
    )]})
    expectations = {
        "1.1": [str(corrupt), "reduce@1.1", "truncated"],
        "1.2": [str(tmp_path / "gone.sif"), "reduce@1.2", "does not exist"],
        "1.3": [str(other.path), "reduce@1.3", "does not match its catalog entry", other.digest, good.digest],
        "1.4": [str(garbage), "reduce@1.4", "not a SIF file"],
    }
    for version, words in expectations.items():
        result = app_user.visa_app("run", f"reduce@{version}", "version")
        assert result.returncode == 2, result.stdout
        assert all(word in result.stderr for word in words), (version, result.stderr)
        assert "Traceback" not in result.stderr
    records = list(app_user.records.glob("*.json"))
    assert not records or all(not json.loads(p.read_text())["apps"] for p in records), "a refused launch was recorded"
    unknown = app_user.visa_app("run", "reduce@7.0")
    assert "reduce has no version '7.0'. Versions: 1.1, 1.2, 1.3, 1.4." in unknown.stderr


def test_apps_catalog_errors_name_file_and_key(app_images_built, app_user: AppUser):
    publish(app_user.catalog, "reduce", {"apps": [reduce_app({"version": "1.0", "image": "x.sif",
                                                               "digest": "md5:1234"})]})
    result = app_user.visa_app("list")
    assert result.returncode == 2
    assert f"{app_user.catalog / 'reduce.yaml'}: apps[0].versions[0].digest: must look like sha256:" in result.stderr


def test_apps_bundle_lists_the_pinned_versions_and_its_script_runs_them(app_images_built, app_user: AppUser,
                                                                          tmp_path: Path):
    v1, v2, viewer = (app_images_built[k] for k in ("reduce-1.0", "reduce-2.0", "viewer-1.0"))
    publish(app_user.catalog, "site", {
        "cycles": [{"name": "2026-II", "starts": "2026-07-01", "ends": "2026-12-31",
                    "pins": {"reduce": "1.0", "viewer": "1.0"}}],
        "apps": [reduce_app(version_entry(v1), version_entry(v2)),
                 {"name": "viewer", "title": "Viewer", "kind": "desktop", "versions": [version_entry(viewer)]}],
    })
    output = tmp_path / "bundle.tar"
    made = app_user.visa_app("bundle", "--cycle", "2026-II", "-o", str(output))
    assert made.returncode == 0, made.stderr
    with tarfile.open(output) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path / "unpacked")  # noqa: S202 (our own bundle)
    top = tmp_path / "unpacked" / "visa-apps-2026-II"
    assert names == {f"visa-apps-2026-II/{n}" for n in ("manifest.json", "manifest.tsv", "run.sh",
                                                        "images/reduce-1.0.sif", "images/viewer-1.0.sif")}
    manifest = json.loads((top / "manifest.json").read_text())
    assert [(a["app"], a["version"], a["digest"]) for a in manifest["apps"]] == [
        ("reduce", "1.0", v1.digest), ("viewer", "1.0", viewer.digest)]

    plain = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(app_user.home)}  # no visa-hub, no apptainer
    run = lambda *args: subprocess.run(["sh", str(top / "run.sh"), *args], env=plain, capture_output=True,  # noqa: E731
                                       text=True, timeout=120, cwd=app_user.home)
    verified = run("verify")
    assert verified.returncode == 0 and verified.stdout.count(": ok") == 2, verified.stdout + verified.stderr
    ran = run("reduce", "version")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("reduce 1.0.0 (image 1.0"), ran.stdout
    inside = run("exec", "reduce", "cat", "/opt/reduce/VERSION")
    assert inside.stdout == "1.0\n", inside.stderr
    assert "no app nothing" in run("nothing").stderr

    (top / "images/reduce-1.0.sif").write_bytes(v2.path.read_bytes())  # a changed image is caught
    assert "has digest " + v2.digest in run("verify").stdout


def test_apps_provenance_lists_every_launch_and_reproduce_starts_the_same_versions(app_images_built,
                                                                                    app_user: AppUser):
    v1, v2, mytool = (app_images_built[k] for k in ("reduce-1.0", "reduce-2.0", "mytool-0.1"))
    publish(app_user.catalog, "reduce", {"apps": [reduce_app(version_entry(v1), version_entry(v2))]})
    app_user.visa_app("register", str(mytool.path), "--name", "mytool", "--version", "0.1")
    for args in (("run", "reduce@1.0", "watch", "v1.txt", "0.1"), ("run", "reduce@2.0", "version"),
                 ("run", "mytool@0.1", "first")):
        assert app_user.visa_app(*args).returncode == 0, args
    [path] = app_user.records.glob("*.json")
    record = json.loads(path.read_text())
    assert record["session"]["experiment"]["code"] == "LOKI-2026-042"
    assert record["session"]["flavour"]["name"] == "large" and record["session"]["dask_profiles"] == ["standard"]
    assert {(a["app"], a["version"], a["digest"], a["user_provided"]) for a in record["apps"]} == {
        ("reduce", "1.0", v1.digest, False), ("reduce", "2.0", v2.digest, False),
        ("mytool", "0.1", mytool.digest, True)}

    # later: v3 is the default now, her files are gone; reproduce starts exactly 1.0, 2.0 and her 0.1 again
    (app_user.home / "v1.txt").unlink()
    (app_user.home / "mytool-out.txt").unlink()
    publish(app_user.catalog, "reduce", {"apps": [reduce_app(version_entry(v1, "deprecated"),
                                                             version_entry(v2, "supported"),
                                                             {**version_entry(v2), "version": "3.0"})]})
    reproduced = app_user.visa_app("reproduce", path.stem)
    assert reproduced.returncode == 0, reproduced.stderr
    assert "reduce 2.0.0 (image 2.0, app reduce@2.0)" in reproduced.stdout
    assert set((app_user.home / "v1.txt").read_text().split()) == {"1.0.0"}
    assert (app_user.home / "mytool-out.txt").read_text() == "first\n"

    # an image that changed since the record was written is refused before anything starts
    shutil.copy(v2.path, app_user.home / "mytool-rebuilt.sif")
    app_user.visa_app("register", str(app_user.home / "mytool-rebuilt.sif"), "--name", "mytool", "--version", "0.1")
    refused = app_user.visa_app("reproduce", str(path))
    assert refused.returncode == 2 and "does not match" in refused.stderr and "mytool@0.1" in refused.stderr


def test_apps_run_as_distinct_unprivileged_users_each_with_only_her_home(app_images_built):
    """The local runtime needs no root: alice and bob (real unix users) run the same image, each sees her home.

    (Where /dev/fuse is closed to users, as on these machines, the image is unpacked once instead of mounted.)
    """
    import os
    import tempfile

    from peers_slurm import ensure_user

    users = {name: ensure_user(name) for name in ("alice", "bob")}
    # not under /tmp: apptainer (and the local runtime) bind the host's /tmp into every container
    shared = Path(tempfile.mkdtemp(prefix="visa-apps-users-", dir="/var/tmp"))
    try:
        shared.chmod(0o755)
        image = shared / "reduce-1.0.sif"
        shutil.copy(app_images_built["reduce-1.0"].path, image)
        image.chmod(0o644)
        publish(shared / "catalog", "reduce", {"apps": [reduce_app(
            {"version": "1.0", "image": str(image), "digest": app_images_built["reduce-1.0"].digest})]})
        for path in (shared / "catalog", *(shared / "catalog").iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        homes = {}
        for name, entry in users.items():
            homes[name] = shared / f"home-{name}"
            homes[name].mkdir(mode=0o700)
            os.chown(homes[name], entry.pw_uid, entry.pw_gid)
        results = {}
        for name in users:
            other = homes["bob" if name == "alice" else "alice"]
            script = (f"id -un; test -w $HOME && echo home-writable; test -e {other} && echo sees-other-home; "
                      "cat /opt/reduce/VERSION")
            env = ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={homes[name]}", f"USER={name}",
                   f"VISA_APPS_CATALOG={shared / 'catalog'}", "VISA_APPS_RUNTIME=local"]
            results[name] = subprocess.run(["runuser", "-u", name, "--", *env, *VISA_APP_COMMAND, "exec", "reduce",
                                            "sh", "-c", script], capture_output=True, text=True, timeout=120,
                                           cwd="/")
        for name, result in results.items():
            assert result.returncode == 0, (name, result.stderr)
            assert result.stdout.split() == [name, "home-writable", "1.0"], (name, result.stdout)
            assert list((homes[name] / ".local/share/visa-hub/provenance").glob("*.json")), f"{name}'s record"
    finally:
        subprocess.run(["rm", "-rf", str(shared)], check=False)
