"""The command lines the runtimes run: production apptainer and the local runtime's bubblewrap."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from visa_hub.apps.images import SANDBOX, SIF, ImageError, ImageFile, open_image
from visa_hub.apps.runtime import ENV_SCRIPT, LaunchSpec, Mount, apptainer_command, bwrap_command, passwd_with
from visa_hub.apps.sif import Partition

IMAGE = ImageFile(Path("/cvmfs/apps/reduce-2.0.sif"), SIF, Partition(32768, 1000, "amd64"))


def test_apps_apptainer_exec_with_binds_gpu_environment_and_workdir():
    spec = LaunchSpec(IMAGE, ("python3", "-m", "ipykernel_launcher", "-f", "/run/k.json"),
                      binds=(Mount("/ess/data/loki/X", "/data/X"), Mount("/scratch/x", "/scratch", True)),
                      env={"VISA_APP": "reduce", "DISPLAY": ":1", "LIST": "a,b"}, gpu=True, workdir="/home/alice/w")
    command = apptainer_command(spec, "/usr/bin/apptainer")
    assert command.argv == [
        "/usr/bin/apptainer", "exec", "--cleanenv", "--nv", "--bind", "/ess/data/loki/X:/data/X:ro",
        "--bind", "/scratch/x:/scratch:rw", "--pwd", "/home/alice/w", "/cvmfs/apps/reduce-2.0.sif",
        "python3", "-m", "ipykernel_launcher", "-f", "/run/k.json"]
    assert command.env == {"APPTAINERENV_DISPLAY": ":1", "APPTAINERENV_LIST": "a,b", "APPTAINERENV_VISA_APP": "reduce"}


def test_apps_apptainer_run_uses_the_runscript_without_gpu():
    command = apptainer_command(LaunchSpec(IMAGE, ("version",), runscript=True))
    assert command.argv == ["apptainer", "run", "--cleanenv", "/cvmfs/apps/reduce-2.0.sif", "version"]


def _rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for name in ("usr/bin", "etc", "opt/reduce", ".singularity.d/env", "proc", "tmp", "home"):
        (root / name).mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "usr/bin/sh").write_text("")
    for name in ("passwd", "group", "hosts"):
        (root / "etc" / name).write_text("root:x:0:0::/root:/bin/sh\n")
    return root


def test_apps_bwrap_builds_the_root_from_the_image_with_apptainer_binds(tmp_path):
    root = _rootfs(tmp_path)
    spec = LaunchSpec(ImageFile(root, SANDBOX), ("reduce", "version"), binds=(Mount("/ess/X", "/data/X"),),
                      env={"VISA_APP": "reduce"}, workdir="/srv/project")
    passwd = tmp_path / "passwd"
    passwd.write_text("x")
    argv = bwrap_command(spec, root, home="/home/alice", passwd=passwd, group=None, devices=("/dev/nvidia0",)).argv
    text = " ".join(argv)
    assert argv[:5] == ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    assert f"--ro-bind {root}/usr /usr" in text and "--symlink usr/bin /bin" in text
    assert f"--ro-bind {root}/proc" not in text and "--proc /proc --dev /dev" in text
    assert "--bind /tmp /tmp" in text and "--dev-bind /dev/nvidia0 /dev/nvidia0" in text
    assert f"--ro-bind {passwd} /etc/passwd" in text and "/etc/group" not in text
    assert "--bind /home/alice /home/alice" in text and "--bind /srv/project /srv/project" in text
    assert "--ro-bind /ess/X /data/X" in text
    assert "--clearenv" in argv and "--setenv VISA_APP reduce" in text and "--setenv HOME /home/alice" in text
    assert argv[argv.index("--chdir") + 1] == "/srv/project"
    assert argv[argv.index("--"):] == ["--", "/bin/sh", "-c", ENV_SCRIPT, "visa-app", "reduce", "version"]
    runscript = bwrap_command(LaunchSpec(ImageFile(root, SANDBOX), ("a",), runscript=True), root, home="/h").argv
    assert runscript[-2:] == ["/.singularity.d/runscript", "a"]


def test_apps_bwrap_underlays_directories_that_must_hold_a_new_bind_target(tmp_path):
    root = _rootfs(tmp_path)
    spec = LaunchSpec(ImageFile(root, SANDBOX), ("true",), binds=(Mount("/ess/X", "/opt/data/X"),))
    text = " ".join(bwrap_command(spec, root, home="/home/alice").argv)
    # /opt becomes the container's own directory holding the image's /opt/reduce, so /opt/data can be made
    assert f"--dir /opt --ro-bind {root}/opt/reduce /opt/reduce" in text
    assert f"--ro-bind {root}/opt /opt" not in text and "--ro-bind /ess/X /opt/data/X" in text
    assert "--dir /home" in text and "--bind /home/alice /home/alice" in text  # her home inside the image's /home
    existing = LaunchSpec(ImageFile(root, SANDBOX), ("true",), binds=(Mount("/ess/X", "/opt/reduce"),))
    text = " ".join(bwrap_command(existing, root, home="/home/alice").argv)
    assert f"--ro-bind {root}/opt /opt" in text and "--ro-bind /ess/X /opt/reduce" in text


def test_apps_passwd_gets_her_line_once(tmp_path):
    host, image = tmp_path / "host", tmp_path / "image"
    host.write_text("root:x:0:0::/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/bash\n")
    image.write_text("root:x:0:0:root:/root:/bin/sh\n")
    assert passwd_with(host, image, 1001).splitlines() == ["root:x:0:0:root:/root:/bin/sh",
                                                           "alice:x:1001:1001::/home/alice:/bin/bash"]
    assert passwd_with(host, image, 0).splitlines() == ["root:x:0:0:root:/root:/bin/sh"]


def _sif(path: Path, *, magic=b"SIF_MAGIC\0", offset=4096 + 585, data=b"hsqs" + b"\0" * 60, fs=1, part=2) -> Path:
    header = struct.pack("<32s10s3s3s16sqqqqqqqq", b"", magic, b"01\0", b"02\0", b"\0" * 16, 0, 0, 0, 1, 4096, 585,
                         offset, len(data))
    extra = struct.pack("<ii3s", fs, part, b"02\0").ljust(384, b"\0")
    descriptor = struct.pack("<i?IIIqqqqqqq128s384s", 0x4004, True, 1, 0, 0, offset, len(data), len(data), 0, 0, 0,
                             0, b"", extra)
    path.write_bytes(header.ljust(4096, b"\0") + descriptor + data)
    return path


def test_apps_sif_reader_errors_name_the_image(tmp_path):
    good = open_image(_sif(tmp_path / "good.sif"), "reduce@1")
    assert good.partition == Partition(4096 + 585, 64, "amd64")
    cases = {
        "not a SIF file (no SIF_MAGIC header)": _sif(tmp_path / "a.sif", magic=b"NOT_MAGIC\0"),
        "its file system ends at byte": _sif(tmp_path / "b.sif", offset=10_000),
        "without a squashfs root file system partition": _sif(tmp_path / "c.sif", part=3),
        "no squashfs file system where its partition should start": _sif(tmp_path / "d.sif", data=b"x" * 64),
    }
    for problem, path in cases.items():
        with pytest.raises(ImageError) as caught:
            open_image(path, "reduce@1.0 (Reduce 1.0)")
        assert str(caught.value).startswith(f"reduce@1.0 (Reduce 1.0): image {path} is unusable: ")
        assert problem in str(caught.value)
    with pytest.raises(ImageError, match="does not exist"):
        open_image(tmp_path / "none.sif", "x")
    with pytest.raises(ImageError, match="not an image sandbox"):
        open_image(tmp_path, "x")


def test_apps_bwrap_never_binds_a_system_directory_as_working_directory(tmp_path):
    root = _rootfs(tmp_path)
    for workdir in ("/", "/usr/share", "/etc"):
        argv = bwrap_command(LaunchSpec(ImageFile(root, SANDBOX), ("pwd",), workdir=workdir), root, home="/h").argv
        assert f"--bind {workdir} {workdir} " not in " ".join(argv) + " "
        assert argv[argv.index("--chdir") + 1] == "/h"
