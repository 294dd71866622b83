"""The site catalog: instruments, flavours, images and the rules that tie them together.

One YAML file per site. It is parsed into frozen dataclasses and validated on load; every error names the
file, the key path and what is wrong (see :mod:`visa_hub.sitedata`). This module does no I/O beyond reading
that file and is safe to share between the hub's authenticator and spawners.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .lifetimes import LifetimeLimits, LifetimeRules, parse_lifetimes
from .sitedata import Node, SiteDataError, load_yaml

__all__ = [
    "AccessWindow", "Catalog", "DaskProfile", "Flavour", "Image", "InstrumentRule", "Quota", "SiteDataError",
    "load_catalog",
]


@dataclass(frozen=True)
class Flavour:
    """A size of instance: what a user picks between 'small' and 'large'."""

    name: str
    cpus: int
    memory_gb: float
    gpus: int = 0
    description: str = ""

    @property
    def label(self) -> str:
        gpu = f", {self.gpus} GPU" if self.gpus else ""
        return f"{self.name} ({self.cpus} CPU, {self.memory_gb:g} GB{gpu})"


@dataclass(frozen=True)
class Image:
    """A base environment an instance boots from (an OpenStack image, an apptainer image, ...)."""

    name: str
    title: str
    description: str = ""
    cloud_image: str | None = None  # name of the image in the cloud, if it differs


@dataclass(frozen=True)
class DaskProfile:
    """Resources of one Dask worker job on the site's Slurm cluster (a dask-jobqueue ``SLURMCluster`` job).

    The Slurm account is not part of a profile: it is always the code of the session's experiment.
    """

    name: str
    partition: str
    cores: int
    memory_gb: float
    walltime: str  # Slurm time, e.g. "01:00:00" or "1-00:00:00"
    processes: int = 1  # Dask worker processes per job (the cores are shared between them)
    max_jobs: int = 4  # most worker jobs one session may have queued or running
    job_directives: tuple[str, ...] = ()  # extra "#SBATCH <directive>" lines, e.g. "--qos=normal"
    worker_prologue: tuple[str, ...] = ()  # shell lines run in the worker job before the worker starts
    description: str = ""

    @property
    def label(self) -> str:
        return (f"{self.name} ({self.cores} cores, {self.memory_gb:g} GB per job, partition {self.partition}, "
                f"up to {self.max_jobs} jobs of {self.walltime})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for the instance's environment (see :func:`visa_hub.policy.session_environment`)."""
        data = asdict(self)
        data["job_directives"] = list(self.job_directives)
        data["worker_prologue"] = list(self.worker_prologue)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DaskProfile:
        return cls(**{**data, "job_directives": tuple(data.get("job_directives") or ()),
                      "worker_prologue": tuple(data.get("worker_prologue") or ())})


@dataclass(frozen=True)
class InstrumentRule:
    """What experiments on one instrument may use."""

    name: str
    technique: str
    flavours: tuple[str, ...]
    default_flavour: str
    max_lifetime_hours: float
    default_lifetime_hours: float
    images: tuple[str, ...]
    dask_profiles: tuple[str, ...] = ()
    default_dask_profile: str | None = None
    lifetime_overrides: dict[str, float] | None = None  # the users' limits this instrument sets itself


@dataclass(frozen=True)
class AccessWindow:
    """How long before an experiment starts and after it ends its members may start instances."""

    days_before_start: int = 30
    days_after_end: int = 365


@dataclass(frozen=True)
class Quota:
    """How much one person may run at the same time, over all her running instances (``None``: no limit).

    ``name`` is the quota's key in the catalog (``users`` or ``staff``), so that a refusal can name it.
    """

    name: str
    instances: int | None = None
    cpus: int | None = None
    memory_gb: float | None = None
    gpus: int | None = None

    @property
    def label(self) -> str:
        """E.g. ``2 instances, 24 CPUs, 96 GB, 1 GPU`` (only the limits that are set)."""
        parts = []
        if self.instances is not None:
            parts.append(_count(self.instances, "instance"))
        if self.cpus is not None:
            parts.append(_count(self.cpus, "CPU"))
        if self.memory_gb is not None:
            parts.append(f"{self.memory_gb:g} GB")
        if self.gpus is not None:
            parts.append(_count(self.gpus, "GPU"))
        return ", ".join(parts) or "no limit"


def _count(number: float, noun: str) -> str:
    return f"{number:g} {noun}{'' if number == 1 else 's'}"


@dataclass(frozen=True)
class Catalog:
    """A whole site: validated and cross-checked."""

    site_name: str
    flavours: tuple[Flavour, ...]
    images: tuple[Image, ...]
    default_image: str
    instruments: tuple[InstrumentRule, ...]
    access: AccessWindow
    source: str = "<memory>"
    dask_profiles: tuple[DaskProfile, ...] = ()
    user_quota: Quota = Quota("users")  # no limits unless the catalog sets them
    staff_quota: Quota = Quota("staff")

    def quota_for(self, is_staff: bool) -> Quota:
        """The quota that applies to a person: staff have their own."""
        return self.staff_quota if is_staff else self.user_quota
    lifetimes: LifetimeRules = LifetimeRules()

    def flavour(self, name: str) -> Flavour | None:
        return next((f for f in self.flavours if f.name == name), None)

    def image(self, name: str) -> Image | None:
        return next((i for i in self.images if i.name == name), None)

    def dask_profile(self, name: str) -> DaskProfile | None:
        return next((p for p in self.dask_profiles if p.name == name), None)

    def lifetime_limits(self, instrument: InstrumentRule, flavour: str, image: str, staff: bool) -> LifetimeLimits:
        """Lifetime, inactivity, warning and extension rules of one instance (see :mod:`visa_hub.lifetimes`)."""
        return self.lifetimes.resolve(instrument.name, flavour, image, staff, instrument.lifetime_overrides)

    def instrument(self, name: str) -> InstrumentRule | None:
        """The rule for an instrument, matched case-insensitively (User Office spellings vary)."""
        wanted = name.casefold()
        return next((i for i in self.instruments if i.name.casefold() == wanted), None)


def _unique(nodes: list[Node], names: list[str], what: str) -> None:
    seen: set[str] = set()
    for node, name in zip(nodes, names, strict=True):
        if name in seen:
            raise node.key("name").error(f"duplicate {what} name {name!r}")
        seen.add(name)


def _flavour(node: Node) -> Flavour:
    keys = node.mapping(allowed={"name", "cpus", "memory_gb", "gpus", "description"})
    return Flavour(
        name=node.key("name").text(),
        cpus=node.key("cpus").number(minimum=1, integer=True),
        memory_gb=float(node.key("memory_gb").number(minimum=0, strict_min=True)),
        gpus=keys["gpus"].number(minimum=0, integer=True) if "gpus" in keys else 0,
        description=node.key("description", "").value or "",
    )


def _image(node: Node) -> Image:
    node.mapping(allowed={"name", "title", "description", "cloud_image"})
    name = node.key("name").text()
    return Image(
        name=name,
        title=node.key("title", name).text(),
        description=node.key("description", "").value or "",
        cloud_image=node.key("cloud_image", None).optional_text(),
    )


# Slurm time formats a profile may use: MM:SS is left out on purpose (too easy to mistake for HH:MM).
_WALLTIME = re.compile(r"^(?:(\d+)-)?(\d{1,2}):(\d{2}):(\d{2})$|^(\d+)-(\d{1,2})(?::(\d{2}))?$")
# Directives a profile must not set: the session controls them (account = experiment) or dask-jobqueue does.
_RESERVED_DIRECTIVES = {
    "-A": "the account is always the experiment's code",
    "--account": "the account is always the experiment's code",
    "-p": "use the profile's partition key",
    "--partition": "use the profile's partition key",
    "-t": "use the profile's walltime key",
    "--time": "use the profile's walltime key",
    "--deadline": "worker jobs always end by the session's expiry",
    "--time-min": "worker jobs always end by the session's expiry",
    "--mem": "use the profile's memory_gb key",
    "--cpus-per-task": "use the profile's cores key",
    "-J": "dask-jobqueue names the job",
    "--job-name": "dask-jobqueue names the job",
}


def _dask_profile(node: Node) -> DaskProfile:
    node.mapping(allowed={"name", "description", "partition", "cores", "memory_gb", "processes",
                                 "walltime", "max_jobs", "job_directives", "worker_prologue"})
    cores = node.key("cores").number(minimum=1, integer=True)
    processes_node = node.key("processes", 1)
    processes = processes_node.number(minimum=1, integer=True)
    if processes > cores:
        raise processes_node.error(f"must not exceed cores ({cores}), got {processes}")
    walltime_node = node.key("walltime")
    walltime = walltime_node.text()
    if not _WALLTIME.match(walltime):
        raise walltime_node.error(f"must be a Slurm time like 01:30:00 or 2-00:00:00, got {walltime!r}")
    directives_node = node.key("job_directives", [])
    directives = directives_node.text_list()
    for item, directive in zip(directives_node.items(), directives, strict=True):
        if not directive.startswith("-"):
            raise item.error(f"must be an sbatch option such as --qos=normal, got {directive!r}")
        option = re.split(r"[= ]", directive, maxsplit=1)[0]
        if option in _RESERVED_DIRECTIVES:
            raise item.error(f"{option} cannot be set here: {_RESERVED_DIRECTIVES[option]}")
    return DaskProfile(
        name=node.key("name").text(),
        partition=node.key("partition").text(),
        cores=cores,
        memory_gb=float(node.key("memory_gb").number(minimum=0, strict_min=True)),
        walltime=walltime,
        processes=processes,
        max_jobs=node.key("max_jobs", 4).number(minimum=1, integer=True),
        job_directives=directives,
        worker_prologue=node.key("worker_prologue", []).text_list(),
        description=node.key("description", "").value or "",
    )


def _instrument_dask_profiles(node: Node, profiles: set[str]) -> tuple[tuple[str, ...], str | None]:
    """An instrument's ``dask_profiles`` and ``default_dask_profile``, checked against the catalog's."""
    names_node = node.key("dask_profiles", [])
    names = names_node.text_list()
    for item, name in zip(names_node.items(), names, strict=True):
        if name not in profiles:
            defined = ", ".join(sorted(profiles)) or "none: add a top-level dask_profiles list"
            raise item.error(f"unknown Dask profile {name!r} (defined: {defined})")
    default_node = node.key("default_dask_profile", names[0] if names else None)
    default = default_node.optional_text()
    if default is not None and default not in names:
        raise default_node.error(f"{default!r} is not one of this instrument's dask_profiles")
    return names, default


def _instrument(node: Node, flavours: set[str], images: set[str], profiles: set[str],
                lifetimes: LifetimeRules) -> InstrumentRule:
    node.mapping(
        allowed={"name", "technique", "flavours", "default_flavour", "max_lifetime_hours",
                 "default_lifetime_hours", "images", "dask_profiles", "default_dask_profile"}
    )
    allowed_flavours_node = node.key("flavours")
    allowed_flavours = allowed_flavours_node.text_list()
    if not allowed_flavours:
        raise allowed_flavours_node.error("must list at least one flavour")
    for index, item in enumerate(allowed_flavours_node.items()):
        if allowed_flavours[index] not in flavours:
            raise item.error(f"unknown flavour {allowed_flavours[index]!r} (defined: {', '.join(sorted(flavours))})")
    default_node = node.key("default_flavour", allowed_flavours[0])
    default_flavour = default_node.text()
    if default_flavour not in allowed_flavours:
        raise default_node.error(f"{default_flavour!r} is not one of this instrument's flavours")
    overrides: dict[str, float] = {}
    users = lifetimes.resolve(node.key("name").text(), "", "", staff=False)
    max_node = node.key("max_lifetime_hours", users.max_hours)
    max_lifetime = float(max_node.number(minimum=0, strict_min=True))
    if "max_lifetime_hours" in node.value:
        overrides["max"] = max_lifetime
    default_lifetime_node = node.key("default_lifetime_hours", min(users.default_hours, max_lifetime))
    default_lifetime = float(default_lifetime_node.number(minimum=0, strict_min=True))
    if default_lifetime > max_lifetime:
        raise default_lifetime_node.error(
            f"must not exceed max_lifetime_hours ({max_lifetime:g}), got {default_lifetime:g}"
        )
    if "default_lifetime_hours" in node.value or "max_lifetime_hours" in node.value:
        overrides["default"] = default_lifetime
    images_node = node.key("images", sorted(images))
    instrument_images = images_node.text_list()
    for index, item in enumerate(images_node.items()):
        if instrument_images[index] not in images:
            raise item.error(f"unknown image {instrument_images[index]!r} (defined: {', '.join(sorted(images))})")
    dask_profiles, default_dask_profile = _instrument_dask_profiles(node, profiles)
    return InstrumentRule(
        name=node.key("name").text(),
        technique=node.key("technique", "").value or "",
        flavours=allowed_flavours,
        default_flavour=default_flavour,
        max_lifetime_hours=max_lifetime,
        default_lifetime_hours=default_lifetime,
        images=instrument_images,
        dask_profiles=dask_profiles,
        default_dask_profile=default_dask_profile,
        lifetime_overrides=overrides or None,
    )


_QUOTA_KEYS = {"instances", "cpus", "memory_gb", "gpus"}


def _quota(node: Node, name: str, fallback: Quota | None = None) -> Quota:
    """One entry of ``quotas:``; a missing entry is ``fallback`` renamed (staff without their own: the users')."""
    if node.value is None:
        return Quota(name, **{k: getattr(fallback, k) for k in _QUOTA_KEYS}) if fallback else Quota(name)
    keys = node.mapping(allowed=_QUOTA_KEYS)
    return Quota(
        name=name,
        instances=keys["instances"].number(minimum=1, integer=True) if "instances" in keys else None,
        cpus=keys["cpus"].number(minimum=1, integer=True) if "cpus" in keys else None,
        memory_gb=float(keys["memory_gb"].number(minimum=0, strict_min=True)) if "memory_gb" in keys else None,
        gpus=keys["gpus"].number(minimum=0, integer=True) if "gpus" in keys else None,
    )


def _check_quota_fits(node: Node, quota: Quota, instruments: list[InstrumentRule], flavours: list[Flavour]) -> None:
    """A quota smaller than every flavour of an instrument would lock its experiments out: say so on load."""
    by_name = {f.name: f for f in flavours}
    for rule in instruments:
        allowed = [by_name[name] for name in rule.flavours]
        for key, unit in (("cpus", "CPUs"), ("memory_gb", "GB"), ("gpus", "GPUs")):
            limit = getattr(quota, key)
            smallest = min(allowed, key=lambda f, key=key: getattr(f, key))
            if limit is not None and getattr(smallest, key) > limit:
                raise node.key(key).error(
                    f"{limit:g} {unit} is less than {rule.name}'s smallest flavour ({smallest.label}): "
                    f"nobody under this quota could start a {rule.name} instance"
                )


def _quotas(root: Node, instruments: list[InstrumentRule], flavours: list[Flavour]) -> tuple[Quota, Quota]:
    node = root.key("quotas", {})
    node.mapping(allowed={"users", "staff"})
    users = _quota(node.key("users", None), "users")
    staff = _quota(node.key("staff", None), "staff", fallback=users)
    for name, quota in (("users", users), ("staff", staff)):
        if node.value.get(name) is not None:
            _check_quota_fits(node.key(name), quota, instruments, flavours)
    return users, staff


def parse_catalog(root: Node) -> Catalog:
    """Validate a parsed catalog document (see :func:`load_catalog`)."""
    root.mapping(allowed={"site", "access", "flavours", "images", "default_image", "instruments", "dask_profiles",
                          "quotas", "lifetimes"})

    flavour_nodes = list(root.key("flavours").items())
    if not flavour_nodes:
        raise root.key("flavours").error("must define at least one flavour")
    flavours = [_flavour(n) for n in flavour_nodes]
    _unique(flavour_nodes, [f.name for f in flavours], "flavour")

    image_nodes = list(root.key("images").items())
    if not image_nodes:
        raise root.key("images").error("must define at least one image")
    images = [_image(n) for n in image_nodes]
    _unique(image_nodes, [i.name for i in images], "image")
    image_names = {i.name for i in images}
    default_image_node = root.key("default_image", images[0].name)
    default_image = default_image_node.text()
    if default_image not in image_names:
        raise default_image_node.error(f"unknown image {default_image!r}")

    profile_nodes = list(root.key("dask_profiles", []).items())
    dask_profiles = [_dask_profile(n) for n in profile_nodes]
    _unique(profile_nodes, [p.name for p in dask_profiles], "Dask profile")

    instrument_nodes = list(root.key("instruments").items())
    if not instrument_nodes:
        raise root.key("instruments").error("must define at least one instrument")
    profile_names = {p.name for p in dask_profiles}
    instrument_names = {n.key("name").text() for n in instrument_nodes}
    lifetimes = parse_lifetimes(root.key("lifetimes", {}), instrument_names, {f.name for f in flavours}, image_names)
    instruments = [_instrument(n, {f.name for f in flavours}, image_names, profile_names, lifetimes)
                   for n in instrument_nodes]
    _unique(instrument_nodes, [i.name.casefold() for i in instruments], "instrument")

    access_node = root.key("access", {})
    access_node.mapping(allowed={"days_before_start", "days_after_end"})
    access = AccessWindow(
        days_before_start=access_node.key("days_before_start", 30).number(minimum=0, integer=True),
        days_after_end=access_node.key("days_after_end", 365).number(minimum=0, integer=True),
    )
    user_quota, staff_quota = _quotas(root, instruments, flavours)
    return Catalog(
        site_name=root.key("site", "visa-hub").text(),
        flavours=tuple(flavours),
        images=tuple(images),
        default_image=default_image,
        instruments=tuple(instruments),
        access=access,
        source=root.source,
        dask_profiles=tuple(dask_profiles),
        user_quota=user_quota,
        staff_quota=staff_quota,
        lifetimes=lifetimes,
    )


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a site catalog YAML file; raises :class:`SiteDataError` naming file and key."""
    return parse_catalog(load_yaml(path))
