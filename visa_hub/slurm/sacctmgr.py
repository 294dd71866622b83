"""Slurm's accounting database through ``sacctmgr``: what is below visa-hub's parent account, and changes to it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from .accounts import Change, CurrentAccount, Limits, parse_tres, slurm_minutes


class SacctmgrError(RuntimeError):
    """sacctmgr failed; the message is Slurm's."""


async def sacctmgr(*arguments: str, command: Sequence[str] = ("sacctmgr",), timeout: float = 60) -> str:
    """Run ``sacctmgr --immediate --noheader --parsable2 ...``; its output, or :class:`SacctmgrError`."""
    process = await asyncio.create_subprocess_exec(
        *command, "--immediate", "--noheader", "--parsable2", *arguments,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise SacctmgrError(f"sacctmgr {' '.join(arguments[:2])} did not answer within {timeout:g} s") from None
    text, error = out.decode(errors="replace"), err.decode(errors="replace").strip()
    # sacctmgr answers some refusals with exit status 0 and a message ("Nothing new added", "Job(s) active")
    if process.returncode or any(sign in error for sign in (" error", "Error", "denied", "Problem")):
        message = " ".join(line.strip() for line in (error or text).splitlines() if line.strip())
        raise SacctmgrError(message or f"sacctmgr exited with {process.returncode}")
    return text


def _limits(max_jobs: str, max_submit: str, grp_tres: str, max_tres: str, max_wall: str) -> Limits | None:
    """An association's limits as visa-hub sets them; None when they are not of that shape (e.g. none set)."""
    if not max_jobs or max_jobs != max_submit:
        return None
    try:
        return Limits(int(max_jobs), parse_tres(grp_tres), parse_tres(max_tres), slurm_minutes(max_wall))
    except ValueError:
        return None


async def current_accounts(parent: str, *, cluster: str | None = None,
                           command: Sequence[str] = ("sacctmgr",)) -> dict[str, CurrentAccount]:
    """The accounts directly below ``parent`` with their user associations and direct coordinators."""
    where = [f"cluster={cluster}"] if cluster else []
    rows = [line.split("|") for line in (await sacctmgr(
        "show", "associations", *(["where", *where] if where else []),
        "format=account,user,parentname,maxjobs,maxsubmit,grptres,maxtres,maxwall", command=command,
    )).splitlines() if line.strip()]
    names = {row[0] for row in rows if not row[1] and row[2] == parent}
    members: dict[str, dict[str, Limits | None]] = {name: {} for name in names}
    for account, user, _, *limits in rows:
        if user and account in names:
            members[account][user] = _limits(*limits)
    coordinators: dict[str, set[str]] = {name: set() for name in names}
    if names:
        out = await sacctmgr("show", "account", "withcoordinator", "format=account,coordinators", command=command)
        for line in out.splitlines():
            account, _, users = line.partition("|")
            if account in coordinators:
                coordinators[account] = {u.strip() for u in users.split(",") if u.strip()}
    return {name: CurrentAccount(name, members[name], frozenset(coordinators[name])) for name in names}


async def default_accounts(*, command: Sequence[str] = ("sacctmgr",)) -> dict[str, str]:
    """Every Slurm user's default account."""
    out = await sacctmgr("show", "user", "format=user,defaultaccount", command=command)
    return dict(line.split("|", 1) for line in out.splitlines() if "|" in line)


async def apply(change: Change, *, command: Sequence[str] = ("sacctmgr",)) -> None:
    await sacctmgr(*change.arguments, command=command)
