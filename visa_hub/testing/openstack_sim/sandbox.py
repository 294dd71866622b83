"""Simulated VMs: a server's user_data runs as root in a bubblewrap sandbox that looks like a fresh VM.

What a simulated VM sees:

- its **root disk**, a directory per server (``servers/<id>/rootfs``), writable and kept across reboots:
  ``/etc`` (seeded from the image: the host's system accounts only, plus what programs need; no host users,
  no host secrets), ``/var``, ``/home``, ``/root``, ``/srv``, ``/opt``;
- the **image**: the host's ``/usr`` read-only (``/bin``, ``/lib``, ... link to it, as in Debian's merged
  ``/usr``; ``/usr/local`` is empty) and the image files the simulator was given, e.g. a provisioned instance
  environment at ``/opt/visa-instance``;
- its attached **volumes** as directories at ``/dev/disk/by-id/virtio-<first 20 characters of the volume id>``
  (where a KVM guest finds a Cinder volume);
- the simulator's **file server** (see :func:`mount_nfs_helper`): the image's NFS client (``mount.nfs``,
  ``mount.nfs4`` in ``/sbin``, which is the image's own directory of links to ``/usr/sbin`` for this) mounts
  ``<server>:<path>`` from the host directory ``<file server root>/<server>/<path>``, seen only by root at
  ``/run/visa-sim/nfs``. Every VM mounts the same host directories, so what one instance writes another sees at
  once, as with NFS. Ownership is the host kernel's (uids as they are: like an export with ``no_root_squash``);
- fresh ``/tmp``, ``/run``, ``/dev``, its own ``/proc`` (a pid namespace: its own processes only) and hostname;
- the host's network (servers have 127.x addresses), and nothing else of the host: not the hub's checkout or
  virtualenv, not ``/root``, ``/home``, ``/tmp``, not the simulator's environment variables.

user_data runs as root, as cloud-init runs it, with a bounded set of capabilities: enough to create accounts,
mount its volumes, chown and drop to another uid — which is a real uid of the host kernel, so what one unix
user of a VM can see of another's processes and files is exactly what it would be on a VM. The simulator must
therefore run as root and needs bubblewrap (Debian: ``bubblewrap``).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

BWRAP = "bwrap"
# what root in a simulated VM may do: accounts, file ownership, mounts (its volumes), dropping to a uid, signals
CAPABILITIES = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                "CAP_SETGID", "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE")
# /etc entries an image has and programs need; the accounts files are filtered (system accounts only)
ETC_ENTRIES = ("login.defs", "default", "skel", "nsswitch.conf", "host.conf", "gai.conf", "resolv.conf", "services",
               "protocols", "networks", "ssl", "ca-certificates", "ca-certificates.conf", "alternatives",
               "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "mime.types", "mailcap",
               "shells", "profile", "profile.d", "bash.bashrc", "environment", "inputrc", "python3", "python3.11",
               "fonts", "X11", "xdg", "terminfo", "os-release", "debian_version", "pam.d", "pam.conf", "security",
               "adduser.conf", "deluser.conf", "locale.alias", "magic", "dbus-1")
ACCOUNT_FILES = {"passwd": 2, "group": 2, "shadow": None, "gshadow": None}  # file → field holding the id
ROOT_DIRS = ("etc", "var/lib", "var/log", "var/tmp", "var/cache", "home", "root", "srv", "opt", "mnt", "media",
             "usr", "tmp", "run", "proc", "dev", "sbin")
MERGED_USR = ("bin", "lib", "lib32", "lib64", "libx32")  # /sbin: the image's own (see image_sbin)
FILE_SERVER_MOUNT = "/run/visa-sim/nfs"  # where a VM's root finds the simulator's file server
NFS_HELPERS = ("mount.nfs", "mount.nfs4")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing, or the simulator does not run as root."""


def check_available() -> None:
    """Raise :class:`SandboxUnavailable` with what to do if simulated VMs cannot run here."""
    if shutil.which(BWRAP) is None:
        raise SandboxUnavailable("bubblewrap is not installed (apt-get install bubblewrap)")
    if os.geteuid() != 0:
        raise SandboxUnavailable("the simulator must run as root to run user_data as root and drop to other uids")


def image_etc(template: Path, host_etc: Path = Path("/etc")) -> Path:
    """The image's ``/etc`` (built once per simulator): selected host entries, system accounts only."""
    if template.exists():
        return template
    partial = template.with_name(template.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in ETC_ENTRIES:
        source = host_etc / name
        if source.is_symlink() or source.is_file():
            shutil.copy2(source, partial / name, follow_symlinks=False)
        elif source.is_dir():
            shutil.copytree(source, partial / name, symlinks=True, ignore_dangling_symlinks=True,
                            ignore=shutil.ignore_patterns("*.key", "*-key.pem", "private", "opasswd"))
    system_names: set[str] = set()
    for name, id_field in ACCOUNT_FILES.items():
        try:
            lines = (host_etc / name).read_text().splitlines()
        except OSError:
            lines = []
        if id_field is not None:
            kept = [line for line in lines if _system_id(line, id_field)]
            system_names |= {line.split(":", 1)[0] for line in kept}
        else:
            kept = [line for line in lines if line.split(":", 1)[0] in system_names]
        target = partial / name
        target.write_text("".join(f"{line}\n" for line in kept))
        target.chmod(0o644 if id_field is not None else 0o640)
    partial.rename(template)
    return template


# The image's NFS client: mount(8) runs /sbin/mount.<type> <server>:<path> <dir> [-o options] for nfs and nfs4.
MOUNT_NFS = f"""#!/bin/sh
# mount.nfs of the OpenStack simulator's VM image: mounts <server>:<path> from the simulator's file server, a
# host directory that only root sees at {FILE_SERVER_MOUNT} (one subdirectory per server name).
set -eu
prog=$(basename "$0")
[ $# -ge 2 ] || {{ echo "usage: $prog remotetarget dir [-o options]" >&2; exit 1; }}
source=$1 target=$2; shift 2
options=""
while [ $# -gt 0 ]; do case $1 in -o) options=$2; shift 2 ;; *) shift ;; esac; done
case $source in
    ?*:/*) ;;
    *) echo "$prog: remote share not in 'host:dir' format" >&2; exit 32 ;;
esac
server=${{source%%:*}} path=${{source#*:}}
case "/$server/$path/" in
    */../*|*/./*) echo "$prog: access denied by server while mounting $source" >&2; exit 32 ;;
esac
directory="{FILE_SERVER_MOUNT}/$server$path"
if [ ! -d "$directory" ]; then
    echo "$prog: mounting $source failed, reason given by server: No such file or directory" >&2; exit 32
fi
case ",$options," in *,ro,*) mount --bind -o ro "$directory" "$target" ;; *) mount --bind "$directory" "$target" ;; esac
"""


def image_sbin(template: Path, host_sbin: Path = Path("/usr/sbin")) -> Path:
    """The image's ``/sbin`` (built once per simulator): a link to every host ``/usr/sbin`` program, as a
    merged-/usr image has, plus the NFS client helpers (``/sbin`` is where mount(8) looks for them)."""
    if template.exists():
        return template
    partial = template.with_name(template.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for entry in sorted(host_sbin.iterdir()):
        if entry.name not in NFS_HELPERS:
            (partial / entry.name).symlink_to(host_sbin / entry.name)
    for name in NFS_HELPERS:
        helper = partial / name
        helper.write_text(MOUNT_NFS)
        helper.chmod(0o755)
    partial.chmod(0o755)
    partial.rename(template)
    return template


def file_server_root(directory: Path) -> Path:
    """The simulator's file server: ``<directory>/<server>/<path>`` is the export ``<server>:<path>``; root's
    only (0700), as a VM's unprivileged users cannot mount anything either."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    return directory


def _system_id(line: str, field: int) -> bool:
    parts = line.split(":")
    try:
        number = int(parts[field])
    except (IndexError, ValueError):
        return False
    return number < 1000 or number == 65534


def prepare_root_disk(rootfs: Path, etc_template: Path, hostname: str, ip: str,
                      image_paths: Sequence[str] = ()) -> None:
    """A server's root disk on its first boot: directories, merged-/usr links, /etc from the image; the
    directories that hold ``image_paths`` are world-readable, as in an image."""
    first_boot = not (rootfs / "etc").exists()
    for directory in ROOT_DIRS:
        (rootfs / directory).mkdir(parents=True, exist_ok=True)
    for path in image_paths:
        parent = rootfs / Path(path).parent.relative_to("/")
        parent.mkdir(parents=True, exist_ok=True)
        parent.chmod(0o755)
    (rootfs / "root").chmod(0o700)
    (rootfs / "tmp").chmod(0o1777)
    (rootfs / "var/tmp").chmod(0o1777)
    for name in MERGED_USR:
        if (Path("/usr") / name).is_dir() and not (rootfs / name).is_symlink():
            (rootfs / name).symlink_to(f"usr/{name}")
    if (rootfs / "sbin").is_symlink():  # a root disk from before /sbin was the image's own
        (rootfs / "sbin").unlink()
    (rootfs / "sbin").mkdir(exist_ok=True)
    if first_boot:
        shutil.rmtree(rootfs / "etc")
        shutil.copytree(etc_template, rootfs / "etc", symlinks=True)
        (rootfs / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
    (rootfs / "etc/hostname").write_text(hostname + "\n")
    (rootfs / "etc/hosts").write_text(f"127.0.0.1\tlocalhost\n{ip}\t{hostname}\n" if ip else "127.0.0.1\tlocalhost\n")


def volume_device(volume_id: str) -> str:
    """Where a guest finds an attached Cinder volume (virtio serial: the volume id's first 20 characters)."""
    return f"/dev/disk/by-id/virtio-{volume_id[:20]}"


def bwrap_command(rootfs: Path, program: str, *, hostname: str, env: Mapping[str, str],
                  image_files: Mapping[str, Path], volumes: Sequence[tuple[Path, str]],
                  sbin: Path | None = None, file_server: Path | None = None) -> list[str]:
    """The bubblewrap command that runs ``program`` (a path inside the VM) as root in the simulated VM; ``sbin``
    is the image's /sbin (:func:`image_sbin`), ``file_server`` the root of the simulator's NFS exports."""
    command = [BWRAP, "--bind", str(rootfs), "/", "--ro-bind", "/usr", "/usr", "--tmpfs", "/usr/local",
               "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run",
               "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", hostname, "--die-with-parent",
               "--cap-drop", "ALL"]
    for capability in CAPABILITIES:
        command += ["--cap-add", capability]
    for guest, host in sorted(image_files.items()):
        command += ["--ro-bind", str(host), guest]
    for host, guest in volumes:
        command += ["--bind", str(host), guest]
    if sbin is not None:
        command += ["--ro-bind", str(sbin), "/sbin"]
    if file_server is not None:
        command += ["--bind", str(file_server), FILE_SERVER_MOUNT]
    command += ["--chdir", "/root", "--clearenv"]
    base = {"PATH": PATH, "HOME": "/root", "USER": "root", "LOGNAME": "root", "LANG": "C.UTF-8"}
    for key, value in {**base, **env}.items():
        command += ["--setenv", key, value]
    return [*command, "--", program]
