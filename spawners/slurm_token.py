"""The Slurm instance's API token, handed over inside the job instead of through Slurm.

batchspawner passes the server's environment, API token included, with ``sbatch --export``: Slurm then keeps the
token wherever it keeps job environments (slurmctld's state, ``sacct --env-vars`` with ``AccountingStoreFlags``,
the accounting database). visa-hub's Slurm backend leaves the token out of the environment it submits, and the job
step asks the hub for it (:mod:`visa_hub.slurm.jobtoken`) at ``POST /hub/api/visa/slurm-token`` with a *munge
credential* — the proof of identity Slurm itself relies on between nodes: only a process running as the person
can make one that says her uid, it is restricted to the hub's uid, lives five minutes and is accepted once (munged
refuses replays). The hub decodes it with ``unmunge``, checks that the uid is the instance's owner and the job is
the one it just submitted and is waiting for, and answers with the token — once per spawn.

So the token is never in the job's stored environment or script, never on a command line (``ps``), and never in a
file; on the node it lives only in the memory and ``/proc/<pid>/environ`` of her own processes (mode 0400).
"""

from __future__ import annotations

import asyncio
import json
import pwd
from dataclasses import dataclass

from jupyterhub.apihandlers import APIHandler, default_handlers
from tornado import web
from traitlets import Unicode
from traitlets.config import Configurable

TOKEN_PATH = "/api/visa/slurm-token"  # under the hub's base URL: /hub/api/visa/slurm-token
MAX_CREDENTIAL_BYTES = 4096


class SlurmTokenHandover(Configurable):
    """How Slurm jobs prove who they are when they fetch their server's API token from the hub."""

    munge_socket = Unicode(
        "",
        config=True,
        help="munged socket used by the hub (unmunge) and the jobs (munge) for the API token handover. Empty: "
        "munge's default socket (/run/munge/munge.socket.2 on Debian).",
    )


class MungeError(RuntimeError):
    """A munge credential that does not decode (forged, expired, replayed, not for us)."""


@dataclass(frozen=True)
class MungeCredential:
    uid: int
    payload: bytes


async def unmunge(credential: bytes, socket: str = "", timeout: float = 10) -> MungeCredential:
    """Decode ``credential`` with the local munged; the uid that made it and its payload."""
    command = ["unmunge", "--numeric", *(["--socket", socket] if socket else [])]
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(credential), timeout)
    except TimeoutError:
        process.kill()
        raise MungeError("unmunge did not answer") from None
    if process.returncode:
        raise MungeError(err.decode(errors="replace").strip().removeprefix("unmunge: Error: ")
                         or f"unmunge exit status {process.returncode}")
    header, _, payload = out.partition(b"\n\n")
    fields = dict(line.split(":", 1) for line in header.decode().splitlines() if ":" in line)
    try:
        return MungeCredential(int(fields["UID"].strip()), payload)
    except (KeyError, ValueError):
        raise MungeError("unmunge answered without a uid") from None


class SlurmTokenHandler(APIHandler):
    """``POST /hub/api/visa/slurm-token`` with a munge credential → ``{"token": ...}`` for the job's server."""

    def check_xsrf_cookie(self) -> None:
        """Authenticated by the munge credential in the body, never by a cookie."""

    async def post(self) -> None:
        if len(self.request.body) > MAX_CREDENTIAL_BYTES:  # a credential is a few hundred bytes
            raise web.HTTPError(413, "not a munge credential")
        socket = SlurmTokenHandover(config=self.settings.get("config")).munge_socket
        try:
            credential = await unmunge(self.request.body.strip(), socket)
            request = json.loads(credential.payload)
            job_id, server = str(request["job"]), str(request.get("server") or "")
            username = pwd.getpwuid(credential.uid).pw_name
        except (MungeError, ValueError, KeyError, TypeError) as exc:
            self.log.warning("Slurm token handover refused: %s", exc)
            raise web.HTTPError(403, "not a valid munge credential for this hub") from None
        user = self.find_user(username)
        spawner = user.spawners[server] if user is not None and server in user.orm_user.orm_spawners else None
        if spawner is None or not getattr(spawner, "hands_over_token", lambda job: False)(job_id):
            self.log.warning("Slurm token handover refused: job %s of %s (server %r) is not a spawn waiting for "
                             "its token", job_id, username, server)
            raise web.HTTPError(403, f"no instance of {username} is waiting for Slurm job {job_id}")
        self.log.info("API token handed to Slurm job %s of %s (server %r)", job_id, username, server)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"token": spawner.api_token}))


if (TOKEN_PATH, SlurmTokenHandler) not in default_handlers:  # as batchspawner registers its own API handler
    default_handlers.append((TOKEN_PATH, SlurmTokenHandler))
