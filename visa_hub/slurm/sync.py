"""``visa-hub slurm-sync``: Slurm accounts per experiment, with their members and limits, from the User Office.

Each run reads the User Office (:attr:`VisaSite.user_office`) and the site catalog, reads what Slurm's accounting
database has below :attr:`SlurmSync.parent_account`, and makes the difference with ``sacctmgr``: accounts for new
experiments, associations for new members, limits that the catalog changed, members who left and accounts of
closed experiments removed. One log line per change; nothing changes when nothing differs (idempotent); with
``--dry-run`` the changes are only logged.

Rights: the user running it must be able to change accounts below the parent account. The least is what a Slurm
administrator grants once (docs/slurm.md): an association of the hub's service user in the parent account and
that user as the parent's *coordinator* — coordinators may add sub-accounts, users and limits below their account,
and nothing else. Root (or a Slurm administrator) works too; then set :attr:`SlurmSync.coordinator` to the hub's
user so that the hub sees the experiments' jobs under ``PrivateData=jobs``.
"""

from __future__ import annotations

import asyncio
import getpass
import shlex

from traitlets import Bool, Int, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..site import VisaSite
from .accounts import UNLIMITED_QUOTA_INSTANCES, Change, desired_accounts, plan_changes
from .sacctmgr import SacctmgrError, apply, current_accounts, default_accounts


class SlurmSync(LoggingConfigurable):
    """Keeps one Slurm account per open experiment, with its members and the catalog's limits."""

    parent_account = Unicode(
        "visa",
        config=True,
        help="Slurm account below which visa-hub keeps one account per experiment (created once by the Slurm "
        "administrator, with the hub's user as its coordinator). Accounts elsewhere are never touched.",
    )
    cluster = Unicode(
        "",
        config=True,
        help="Slurm cluster name to work on (sacctmgr's cluster=). Empty: every cluster of the accounting database.",
    )
    coordinator = Unicode(
        config=True,
        help="User made coordinator of every experiment account, so that the hub (running as this user) sees their "
        "jobs under PrivateData=jobs with one squeue. Default: the user running the sync (empty when that is root).",
    )

    @default("coordinator")
    def _coordinator_default(self) -> str:
        user = getpass.getuser()
        return "" if user == "root" else user

    instances_per_person = Int(
        None,
        allow_none=True,
        config=True,
        help="Instances one person may run at once in one experiment: added to the Dask profiles' max_jobs in "
        "MaxJobs, and to GrpTRES with the instrument's largest flavour. Default (None): her quota in the site "
        "catalog (quotas.users.instances, or quotas.staff.instances for staff; 1 when the catalog sets no "
        "number). A number here overrides the catalog for everyone.",
    )
    staff_everywhere = Bool(
        True,
        config=True,
        help="Give staff (who may start instances for any experiment) an association in every experiment account.",
    )
    sacctmgr_command = List(
        Unicode(),
        ["sacctmgr"],
        config=True,
        help="The sacctmgr command, e.g. ['sudo', '-n', 'sacctmgr'] when the sync's user may run it only through "
        "sudo. SLURM_CONF from the environment is used.",
    )
    dry_run = Bool(False, config=True, help="Log the changes without making them.")

    @property
    def site(self) -> VisaSite:
        return VisaSite.instance(config=self.config, log=self.log)

    async def plan(self) -> list[Change]:
        """The changes that would make Slurm's accounts match the User Office and the catalog now."""
        office = self.site.user_office
        try:
            people = await office.people()
        except NotImplementedError as exc:
            raise RuntimeError(f"visa-hub slurm-sync cannot work with this User Office: {exc}") from None
        experiments = await office.site_experiments()
        self._warn_about_unset_quota()
        desired, skipped = desired_accounts(experiments, people, self.site.catalog, self.site.now(),
                                            instances=self.instances_per_person,
                                            staff_everywhere=self.staff_everywhere)
        for reason in skipped:
            self.log.debug("No Slurm account for experiment %s", reason)
        current = await current_accounts(self.parent_account, cluster=self.cluster or None,
                                         command=self.sacctmgr_command)
        return plan_changes(desired, current, parent=self.parent_account, coordinator=self.coordinator or None,
                            cluster=self.cluster or None)

    def _warn_about_unset_quota(self) -> None:
        if self.instances_per_person is not None:
            return
        catalog = self.site.catalog
        for quota in (catalog.user_quota, catalog.staff_quota):
            if quota.instances is None:
                self.log.warning(
                    "The site catalog (%s) sets no number of instances for %s (quotas.%s.instances): Slurm's MaxJobs "
                    "counts %d instance per person, so further instances take Dask jobs from her. Set the quota, "
                    "or SlurmSync.instances_per_person.", catalog.source, quota.name, quota.name,
                    UNLIMITED_QUOTA_INSTANCES)

    async def run_once(self) -> tuple[int, int]:
        """One sync; (changes made or, in a dry run, planned; changes that failed)."""
        changes = await self.plan()
        await self._warn_about_default_accounts(changes)
        done = failed = 0
        for change in changes:
            if self.dry_run:
                for summary in change.summaries:
                    self.log.info("[dry run] %s", summary)
                self.log.info("[dry run] sacctmgr %s", shlex.join(change.arguments))
                done += len(change.summaries)
                continue
            try:
                await apply(change, command=self.sacctmgr_command)
            except SacctmgrError as exc:
                failed += len(change.summaries)
                for summary in change.summaries:
                    self.log.error("%s: NOT done, Slurm said: %s (retried at the next sync)", summary, exc)
            else:
                done += len(change.summaries)
                for summary in change.summaries:
                    self.log.info("%s", summary)
        self.log.info("Slurm accounts below %s: %s", self.parent_account,
                      f"{done} change(s){' planned' if self.dry_run else ''}, {failed} failed" if changes
                      else "in step with the User Office, nothing to change")
        return done, failed

    async def _warn_about_default_accounts(self, changes: list[Change]) -> None:
        """Slurm leaves a user without a default account when the account removed was it, and only an
        administrator may set another: say so (jobs from visa-hub and its Dask clients always name the account)."""
        removed = [c.removed_member for c in changes if c.removed_member]
        if not removed:
            return
        defaults = await default_accounts(command=self.sacctmgr_command)
        for user, account in removed:
            if defaults.get(user) == account:
                self.log.warning(
                    "Slurm account %s is %s's default account: after the removal there is none, and a bare sbatch "
                    "must name --account. A Slurm administrator can set another: sacctmgr modify user %s set "
                    "DefaultAccount=<account>", account, user, user)

    async def run_forever(self, interval: float) -> None:
        """Sync every ``interval`` seconds until cancelled; a failed round is logged and retried."""
        while True:
            try:
                await self.run_once()
            except (SacctmgrError, RuntimeError, OSError) as exc:
                self.log.error("Slurm account sync failed (retrying in %g s): %s", interval, exc)
            await asyncio.sleep(interval)
