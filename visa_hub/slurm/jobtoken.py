"""Inside an instance's Slurm job: fetch the server's API token from the hub, then run the server with it.

    python -m visa_hub.slurm.jobtoken -- batchspawner-singleuser jupyterhub-singleuser ...

The hub submits the job without the token (see spawners/slurm_token.py). This step makes a munge credential that
proves it runs as the instance's owner (payload: the Slurm job id and the server's name; decodable only by the
hub's uid, ``VISA_TOKEN_UID``), posts it to ``$JUPYTERHUB_API_URL/visa/slurm-token`` and ``exec``\\ s the command with
``JUPYTERHUB_API_TOKEN`` in its environment. The token is never printed, written to a file or put on a command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

TOKEN_PATH = "/visa/slurm-token"


class HandoverError(RuntimeError):
    """The token could not be fetched; the message says why, for the job's log."""


def credential(env: dict[str, str]) -> bytes:
    """A munge credential for the hub: this job, this server, this uid."""
    payload = json.dumps({"job": env["SLURM_JOB_ID"], "server": env.get("JUPYTERHUB_SERVER_NAME", "")})
    command = ["munge", "--string", payload]
    if env.get("VISA_TOKEN_UID"):
        command += ["--restrict-uid", env["VISA_TOKEN_UID"]]
    if env.get("VISA_MUNGE_SOCKET"):
        command += ["--socket", env["VISA_MUNGE_SOCKET"]]
    try:
        made = subprocess.run(command, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HandoverError(f"cannot run munge on this node ({exc})") from None
    if made.returncode:
        raise HandoverError(f"munge failed: {made.stderr.decode(errors='replace').strip()}")
    return made.stdout.strip()


def fetch_token(env: dict[str, str], attempts: int = 5, pause: float = 2.0) -> str:
    """The server's API token from the hub (a new credential per attempt: munged accepts each one once)."""
    url = env["JUPYTERHUB_API_URL"].rstrip("/") + TOKEN_PATH
    last = ""
    for attempt in range(attempts):
        request = urllib.request.Request(url, data=credential(env), method="POST",
                                         headers={"Content-Type": "text/plain"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())["token"]
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            if exc.code in (400, 403, 404):
                raise HandoverError(f"the hub refused the token handover (HTTP {exc.code}): {detail}") from None
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            last = str(exc)
        if attempt + 1 < attempts:
            time.sleep(pause)
    raise HandoverError(f"the hub at {url} did not hand over the API token ({last})")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m visa_hub.slurm.jobtoken -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    env = dict(os.environ)
    missing = [name for name in ("SLURM_JOB_ID", "JUPYTERHUB_API_URL") if not env.get(name)]
    if missing:
        print(f"visa-hub: {', '.join(missing)} not set: this runs inside a Slurm job started by the hub",
              file=sys.stderr)
        return 2
    try:
        env["JUPYTERHUB_API_TOKEN"] = fetch_token(env)
    except HandoverError as exc:
        print(f"visa-hub: cannot start the instance's server: {exc}", file=sys.stderr)
        return 1
    print("visa-hub: API token received from the hub", file=sys.stderr)
    os.execvpe(args[0], args, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
