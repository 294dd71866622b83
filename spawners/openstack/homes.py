"""Where an instance's home and experiment data come from: a Cinder volume, or exports of a shared file server.

Two kinds of home (the site chooses with ``OpenStackSpawner.home_source``):

- ``volume`` — one Cinder volume per person, found by its metadata and attached when an instance is created.
  A volume attaches to one server at a time (and a filesystem on it may be mounted by one kernel only), so
  while one of her instances runs, another one is refused before anything is created
  (:func:`volume_home_conflict`).
- ``nfs://<server>/<path with {username}>`` — her directory on the site's file server (an NFS export per
  person, or a Manila share's NFS export location), mounted by user_data on every instance of hers at once:
  all her instances see the same files, live.

Experiment data (``OpenStackSpawner.experiment_data_source``, ``nfs://<server>/<path with {experiment}>``) uses
the same mechanism: the experiment's directory on the file server, mounted on every instance of every member.

Pure: parsing, validation and names; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

VOLUME = "volume"
_SERVER = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$")
_PATH_PART = re.compile(r"^[A-Za-z0-9._-]+$")
_PLACEHOLDER = re.compile(r"{([^{}]*)}")


class ShareSettingError(ValueError):
    """A share setting (URL template) the spawner cannot use; the message names the setting."""


@dataclass(frozen=True)
class Export:
    """One directory of the file server, as ``mount -t nfs`` takes it."""

    server: str
    path: str

    @property
    def source(self) -> str:
        return f"{self.server}:{self.path}"


@dataclass(frozen=True)
class ExportTemplate:
    """A file-server URL with placeholders (``nfs://files.example/export/homes/{username}``)."""

    server: str
    path: str

    def export(self, **values: str) -> Export:
        """The export for these values; a value that is not a safe path component is refused."""
        for name, value in values.items():
            if not _PATH_PART.match(value) or value in (".", ".."):
                raise ShareSettingError(f"{value!r} cannot name a directory on the file server ({{{name}}})")
        return Export(self.server, self.path.format(**values))


def parse_export(url: str, setting: str, placeholders: frozenset[str]) -> ExportTemplate:
    """Check ``nfs://server/path`` with the allowed ``placeholders``; errors name ``setting``."""
    parts = urlsplit(url)
    if parts.scheme != "nfs":
        raise ShareSettingError(f"{setting}: {url!r} is not an nfs://<server>/<path> URL")
    if parts.query or parts.fragment or parts.username or parts.password or parts.port is not None:
        raise ShareSettingError(f"{setting}: {url!r} may hold only a server name and a path (mount options go "
                                "into shared_mount_options)")
    if not parts.hostname or not _SERVER.match(parts.netloc):
        raise ShareSettingError(f"{setting}: {url!r} names no valid file server")
    path = parts.path.rstrip("/")
    if not path.startswith("/") or any(part in (".", "..") for part in path.split("/")):
        raise ShareSettingError(f"{setting}: {url!r} needs an absolute path without '.' or '..'")
    used = set(_PLACEHOLDER.findall(path))
    if used - placeholders:
        raise ShareSettingError(f"{setting}: unknown placeholder(s) {sorted(used - placeholders)} in {url!r}; "
                                f"allowed: {sorted('{' + p + '}' for p in placeholders)}")
    if not used:
        raise ShareSettingError(f"{setting}: {url!r} must name a directory per "
                                f"{' or '.join(sorted(placeholders))} with a placeholder, e.g. "
                                f"{{{sorted(placeholders)[0]}}}")
    return ExportTemplate(parts.netloc, path)


HOME_PLACEHOLDERS = frozenset({"username"})
DATA_PLACEHOLDERS = frozenset({"experiment"})


def parse_home_source(value: str) -> ExportTemplate | None:
    """``None`` for Cinder volume homes, else the template of her export on the file server."""
    if value.strip() == VOLUME:
        return None
    return parse_export(value.strip(), "OpenStackSpawner.home_source", HOME_PLACEHOLDERS)


def parse_data_source(value: str) -> ExportTemplate | None:
    """``None`` when the site has no experiment data directories, else their template."""
    if not value.strip():
        return None
    return parse_export(value.strip(), "OpenStackSpawner.experiment_data_source", DATA_PLACEHOLDERS)


def data_mount_point(template: str, experiment: str) -> str:
    """Where an experiment's data directory is mounted on the instance (``/data/{experiment}``)."""
    if not _PATH_PART.match(experiment):
        raise ShareSettingError(f"{experiment!r} cannot name a directory ({{experiment}})")
    path = template.format(experiment=experiment)
    if not path.startswith("/") or any(part in (".", "..") for part in path.split("/")):
        raise ShareSettingError(f"OpenStackSpawner.experiment_data_mount: {template!r} must be an absolute path")
    return path


def experiment_group(experiment: str) -> str:
    """The unix group of an experiment's members on instances: ``exp-<code in lowercase>`` (at most 32)."""
    name = re.sub(r"[^a-z0-9_-]+", "-", experiment.lower()).strip("-") or "x"
    return f"exp-{name}"[:32].rstrip("-")


def instance_label(experiment: str, server_name: str, default_name: str) -> str:
    """How the dashboard names an instance: its experiment's code, with the server name if it differs from
    the usual one (a second instance of the same experiment)."""
    label = experiment or server_name or "your default instance"
    if server_name and experiment and server_name != default_name:
        label = f"{label} ({server_name})"
    return label


def volume_home_conflict(holder: str) -> str:
    """Why a second instance cannot start while ``holder`` (an instance label) has her volume home."""
    return (f"Your home directory is a cloud volume, which only one instance can use at a time, and your "
            f"instance {holder} is using it: stop {holder} first, or ask the site for shared homes.")
