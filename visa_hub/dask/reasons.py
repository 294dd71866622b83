"""Why a Slurm job is still pending, in words (squeue's ``%r``). Pure; shared by the Slurm backend and Dask."""

from __future__ import annotations

# Pending reasons people meet, in their words; reasons in NEVER_STARTS will not resolve by waiting.
PENDING_REASONS = {
    "None": "the scheduler has not looked at it yet",
    "Priority": "jobs with a higher priority are ahead of it",
    "Resources": "the cluster is busy: waiting for free cores and memory",
    "BeginTime": "it is scheduled to start later",
    "Dependency": "it waits for another job",
    "ReqNodeNotAvail": "the nodes it needs are unavailable (maintenance?)",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "JobHeldAdmin": "an administrator held it",
    "JobHeldUser": "it is held",
    "PartitionTimeLimit": "its time limit is longer than the partition allows",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "PartitionConfig": "it asks for more than the partition allows (time limit, cores or memory)",
    "AssocGrpCpuLimit": "the experiment's account has used its CPU allowance",
    "AssocMaxJobsLimit": "the experiment's account has too many jobs",
    "InvalidAccount": "the experiment has no account on the cluster",
    "InvalidQOS": "the quality of service is invalid",
    "QOSMaxJobsPerUserLimit": "you have the most jobs the quality of service allows",
}
NEVER_STARTS = {"PartitionTimeLimit", "PartitionNodeLimit", "InvalidAccount", "InvalidQOS", "JobHeldAdmin",
                "PartitionDown", "PartitionInactive", "BadConstraints", "PartitionConfig"}


def explain_reason(reason: str) -> str:
    """A pending reason (squeue ``%r``) in words, keeping Slurm's own name for support."""
    key = reason.split(",")[0].strip()
    words = PENDING_REASONS.get(key)
    return f"{words} ({reason})" if words else reason
