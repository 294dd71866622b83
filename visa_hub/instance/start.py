"""Start an instance's JupyterLab as its person, with a token no other unix user of the instance can read.

    VISA_BOOTSTRAP_CODE=<code> python -m visa_hub.instance.start --user alice --home /home/alice \\
        --token-file /var/lib/visa-instance/api-token --service-url http://10.0.0.5:8888/user/alice/ \\
        -- /opt/visa-instance/bin/jupyterhub-singleuser --ip=10.0.0.5 --port=8888

Run as root by the instance's user_data (cloud-init), from the instance environment. It

1. trades the one-time bootstrap code for the server's API token at the hub (``JUPYTERHUB_API_URL``, the hub's
   connect URL), waiting for the hub while it is unreachable (e.g. restarting) — or, when the instance boots
   again, reads the token it stored at first boot;
2. stores the token in ``--token-file``, created mode 0600 and owned by her (never readable by anyone else);
3. drops root for good (her uid, her groups) and replaces itself with the server command, which gets the token
   in its environment — ``/proc/<pid>/environ`` is readable only by her and root, unlike the command line.

Nothing secret is printed: the output goes to the instance's console log.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import stat
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from visa_hub.bootstrap import INSTANCE_TOKEN_PATH

CODE_VARIABLE = "VISA_BOOTSTRAP_CODE"
# not passed from root's environment to hers
NOT_INHERITED = {CODE_VARIABLE, "HOME", "USER", "LOGNAME", "SHELL", "MAIL", "PWD", "OLDPWD", "PATH", "JPY_API_TOKEN"}


class StartError(RuntimeError):
    """The instance cannot start JupyterLab; the message says why (for the console log)."""


def say(message: str) -> None:
    print(f"visa-hub: {message}", flush=True)


# ---------------------------------------------------------------- the token


def redeem(api_url: str, user: str, server_name: str, code: str, wait: float = 900.0) -> str:
    """The server's API token for this bootstrap code, from the hub; retries while the hub is unreachable."""
    url = f"{api_url.rstrip('/')}/{INSTANCE_TOKEN_PATH}"
    body = json.dumps({"user": user, "server_name": server_name, "code": code}).encode()
    deadline, delay = time.monotonic() + wait, 1.0
    while True:
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return str(json.load(response)["token"])
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise StartError(f"the hub at {url} refused this instance's bootstrap code (HTTP {exc.code}: "
                                 f"{_message(exc)}); the code is used once only") from None
            problem = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            problem = str(getattr(exc, "reason", exc))
        if time.monotonic() + delay > deadline:
            raise StartError(f"the hub at {url} could not be reached for {wait:g} s ({problem})")
        say(f"the hub at {url} is not reachable yet ({problem}); trying again in {delay:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 15.0)


def _message(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read() or b"{}").get("message", error.reason))
    except (ValueError, OSError):
        return str(error.reason)


def stored_token(path: Path, uid: int) -> str | None:
    """The token stored at an earlier boot, if the file is hers and private; else ``None``."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        say(f"ignoring {path}: not a private file of uid {uid}")
        return None
    return path.read_text().strip() or None


def store_token(path: Path, token: str, uid: int, gid: int) -> None:
    """Write ``token`` to ``path``: created 0600 and owned by ``uid`` before it holds anything."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        if os.geteuid() == 0:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, 0o600)
        os.write(fd, token.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)


# ---------------------------------------------------------------- becoming her


def become(account: pwd.struct_passwd) -> None:
    """Drop root for good: her groups, her gid, her uid."""
    if os.getuid() == account.pw_uid and os.geteuid() == account.pw_uid:
        return
    if os.geteuid() != 0:
        raise StartError(f"must run as root to start JupyterLab as {account.pw_name} (running as uid {os.getuid()})")
    os.setgroups(os.getgrouplist(account.pw_name, account.pw_gid))
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise StartError("root privileges could not be dropped")


def server_environment(inherited: Mapping[str, str], account: pwd.struct_passwd, home: str, token: str,
                       service_url: str) -> dict[str, str]:
    """Her server's environment: the server settings of user_data, her identity, the token."""
    env = {key: value for key, value in inherited.items() if key not in NOT_INHERITED and not key.startswith("SUDO_")}
    env.update(
        HOME=home, USER=account.pw_name, LOGNAME=account.pw_name, SHELL=account.pw_shell or "/bin/sh",
        PATH=os.pathsep.join([str(Path(sys.prefix) / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
        JUPYTERHUB_SERVICE_URL=service_url, JUPYTERHUB_API_TOKEN=token,
    )
    env.setdefault("LANG", "C.UTF-8")
    return env


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m visa_hub.instance.start", description=__doc__.splitlines()[0])
    parser.add_argument("--user", required=True, help="her unix account")
    parser.add_argument("--home", required=True, help="her home directory (the mounted home volume)")
    parser.add_argument("--token-file", type=Path, required=True, help="where the server's token is kept")
    parser.add_argument("--service-url", required=True, help="the URL the server listens on (JUPYTERHUB_SERVICE_URL)")
    parser.add_argument("--wait", type=float, default=900.0, help="seconds to wait for an unreachable hub")
    parser.add_argument("command", nargs="+", help="the server command (after --)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> NoReturn:
    args = parse_args(argv)
    code = os.environ.pop(CODE_VARIABLE, "")
    try:
        account = pwd.getpwnam(args.user)
        token = stored_token(args.token_file, account.pw_uid)
        if token is None:
            if not code:
                raise StartError(f"no stored token and no bootstrap code ({CODE_VARIABLE}) for {args.user}")
            api_url = os.environ.get("JUPYTERHUB_API_URL", "")
            if not api_url:
                raise StartError("JUPYTERHUB_API_URL (the hub's connect URL) is not set")
            say(f"fetching the server's API token from the hub at {api_url}")
            token = redeem(api_url, os.environ.get("JUPYTERHUB_USER", args.user),
                           os.environ.get("JUPYTERHUB_SERVER_NAME", ""), code, args.wait)
            store_token(args.token_file, token, account.pw_uid, account.pw_gid)
        env = server_environment(os.environ, account, args.home, token, args.service_url)
        become(account)
        os.chdir(args.home)
        program = shutil.which(args.command[0], path=env["PATH"]) or args.command[0]
    except (StartError, KeyError, OSError) as exc:
        say(f"cannot start JupyterLab: {exc}")
        sys.exit(1)
    say(f"starting {Path(program).name} as {account.pw_name} (uid {account.pw_uid})")
    os.execve(program, args.command, env)


if __name__ == "__main__":
    main()
