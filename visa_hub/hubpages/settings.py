"""What an instance was started with, in words for the confirmation pages. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def instance_label(server_name: str, display_name: str | None = None) -> str:
    """``instance “loki”`` for a named server, ``your instance`` for the default one."""
    name = display_name or server_name
    return f"instance “{name}”" if name else "your instance"


def settings_rows(options: Mapping[str, Any], summary: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(label, value) rows of the settings a relaunch reuses.

    ``options`` are the server's ``user_options`` (what is reused); ``summary`` is the running session's
    :meth:`~visa_hub.policy.SessionPlan.summary` when the spawner still has it, for titles instead of ids.
    """
    summary = summary or {}
    experiment = summary.get("experiment") or {}
    rows: list[tuple[str, str]] = []
    code = options.get("experiment") or experiment.get("code")
    if code:
        title = experiment.get("title") if experiment.get("code") == code else None
        rows.append(("Experiment", f"{code}: {title}" if title else str(code)))
    if summary.get("instrument"):
        rows.append(("Instrument", str(summary["instrument"])))
    flavour = summary.get("flavour") or {}
    name = options.get("flavour") or flavour.get("name")
    if name:
        if flavour.get("name") == name:
            gpus = f", {flavour['gpus']} GPU" if flavour.get("gpus") else ""
            rows.append(("Flavour", f"{name} ({flavour['cpus']} CPUs, {flavour['memory_gb']:g} GB{gpus})"))
        else:
            rows.append(("Flavour", str(name)))
    image = options.get("image") or summary.get("image")
    if image:
        title = summary.get("image_title") if summary.get("image") == image else None
        rows.append(("Image", str(title or image)))
    hours = options.get("lifetime_hours") or summary.get("lifetime_hours")
    if hours:
        rows.append(("Lifetime", f"{hours} hours from the new start"))
    return rows


def experiment_code(options: Mapping[str, Any], summary: Mapping[str, Any] | None) -> str | None:
    """The experiment an instance runs for, from its options or its running session."""
    return options.get("experiment") or ((summary or {}).get("experiment") or {}).get("code")
