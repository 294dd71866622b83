"""Look into a simulated VM from the host, and act inside it as one of its unix users.

The OpenStack simulator runs a server's user_data in a bubblewrap sandbox (its own mount, pid and uts
namespaces; see visa_hub/testing/openstack_sim/sandbox.py). The test process is root on the host, so it can
read any process of a VM (as the cloud's operator could), and ``in_vm`` runs a command inside a VM's
namespaces as any uid — what another unix user logged in to that VM can do.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visa_hub.testing.openstack_sim.sandbox import PATH


@dataclass(frozen=True)
class VmProcess:
    pid: int  # on the host
    uid: int
    argv: list[str]


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def vm_processes(server: Any) -> list[VmProcess]:
    """Every process of a server's VM (the sandbox's own processes, not the bwrap that started it)."""
    children, found, todo = _children(), [], list(_children().get(server.process.pid, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
            found.append(VmProcess(pid, _uid(pid), argv))
        except (OSError, StopIteration):
            continue
    return found


def lab_process(server: Any, marker: str = "jupyterhub-singleuser") -> VmProcess:
    """The server process of a VM (jupyterhub-singleuser, or the stand-in given as ``marker``)."""
    matches = [p for p in vm_processes(server) if any(marker in arg for arg in p.argv[:2])]
    assert len(matches) == 1, f"expected one {marker} process in the VM, found {matches}"
    return matches[0]


def environ_of(pid: int) -> dict[str, str]:
    """A process's environment, read as root on the host."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def in_vm(server: Any, argv: list[str], *, uid: int = 0, gid: int | None = None, input: str | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside a server's VM (its filesystem, process list and hostname) as ``uid``."""
    target = vm_processes(server)[0].pid
    command = ["nsenter", f"--target={target}", "--mount", "--pid", "--uts", "--ipc", "--root", "--wd", "--"]
    if uid != 0:
        command += ["setpriv", f"--reuid={uid}", f"--regid={uid if gid is None else gid}", "--clear-groups", "--"]
    env = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/"}
    return subprocess.run([*command, *argv], input=input, capture_output=True, text=True, timeout=timeout,
                          env=env, cwd="/")


def uid_of(path: Path) -> int:
    return os.stat(path).st_uid
