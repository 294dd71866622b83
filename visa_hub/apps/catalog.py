"""The app catalog: apps, their versions and images, the proposal cycles that pin them, site-wide binds.

Site data in YAML, validated on load like the site catalog (errors name file and key path, see
:mod:`visa_hub.sitedata`). It lives on shared storage (CVMFS, NFS) and is read when something is launched or
listed, never baked into an instance: a published version shows up at once. ``VISA_APPS_CATALOG`` names a
file or a directory of ``*.yaml`` files (one per app, say), merged. A person's own images are registered in her
home in the same format (:func:`load_user_apps`) and are marked user-provided everywhere.

Example::

    binds:                       # bound into every app (templates: {experiment} {instrument} {user} {home})
      - {source: /ess/data/{instrument}/{experiment}, target: /data/{experiment}, mode: ro}
    cycles:                      # a proposal cycle pins a default version per app
      - {name: 2026-II, starts: 2026-07-01, ends: 2026-12-31, pins: {scipp-reduce: "26.10"}}
    apps:
      - name: scipp-reduce
        title: Scipp reduction
        kind: kernel             # kernel | desktop | command
        instruments: [LoKI, DREAM]
        kernel: {language: python}
        versions:
          - {version: "26.10", image: scipp-reduce-26.10.sif, digest: "sha256:...", status: current}
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sitedata import Node, SiteDataError, load_yaml

KINDS = ("kernel", "desktop", "command")
STATUSES = ("current", "supported", "deprecated")
KERNEL_ARGV = {
    "python": ("python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"),
    "julia": ("julia", "-i", "--color=yes", "-e", "import IJulia; IJulia.run_kernel()", "{connection_file}"),
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class AppError(LookupError):
    """An app or version that does not exist, for a person: names what was asked and what exists."""


@dataclass(frozen=True)
class Kernel:
    """The Jupyter kernel an app version ships: its language and the command that runs it in the image."""

    language: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class AppVersion:
    """One runnable version of an app: an image with a content digest."""

    app: str
    version: str
    title: str
    kind: str
    image: Path
    digest: str | None
    status: str = "current"
    description: str = ""
    instruments: tuple[str, ...] = ()
    kernel: Kernel | None = None
    command: tuple[str, ...] = ()  # what `run` executes without arguments; empty: the image's runscript
    notes: str = ""
    user_provided: bool = False
    source: str = ""  # the YAML file it came from

    @property
    def ref(self) -> str:
        return f"{self.app}@{self.version}"

    @property
    def label(self) -> str:
        """How people see it: title, version, and a mark when it is not the site's current one."""
        marks = [m for m in (("your image" if self.user_provided else ""),
                             (self.status if self.status != "current" else "")) if m]
        return f"{self.title} {self.version}" + (f" ({', '.join(marks)})" if marks else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app, "version": self.version, "title": self.title, "kind": self.kind,
            "image": str(self.image), "digest": self.digest, "status": self.status,
            "description": self.description, "instruments": list(self.instruments),
            "kernel": {"language": self.kernel.language} if self.kernel else None,
            "notes": self.notes, "user_provided": self.user_provided, "label": self.label, "ref": self.ref,
        }


@dataclass(frozen=True)
class App:
    name: str
    title: str
    kind: str
    versions: tuple[AppVersion, ...]
    description: str = ""
    instruments: tuple[str, ...] = ()
    user_provided: bool = False

    def version(self, version: str) -> AppVersion | None:
        return next((v for v in self.versions if v.version == version), None)

    def serves(self, instrument: str | None) -> bool:
        return not self.instruments or not instrument or instrument.casefold() in {
            i.casefold() for i in self.instruments}


@dataclass(frozen=True)
class Cycle:
    """A proposal cycle: its dates and the app version pinned as default for each app."""

    name: str
    starts: dt.date
    ends: dt.date
    pins: dict[str, str] = field(default_factory=dict)

    def contains(self, day: dt.date) -> bool:
        return self.starts <= day <= self.ends


@dataclass(frozen=True)
class Bind:
    """A directory bound into every app; ``source`` and ``target`` are templates filled per session."""

    source: str
    target: str
    mode: str = "ro"


def version_key(version: str) -> tuple:
    """Natural order of version strings: 2.10 after 2.9, 26.10 after 26.4."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[._+-]", version))


@dataclass(frozen=True)
class AppCatalog:
    """Site apps, her own apps, cycles and binds; ``problems`` lists what could not be read (shown, not fatal)."""

    apps: tuple[App, ...] = ()
    cycles: tuple[Cycle, ...] = ()
    binds: tuple[Bind, ...] = ()
    problems: tuple[str, ...] = ()

    def app(self, name: str) -> App | None:
        return next((a for a in self.apps if a.name == name), None)

    def cycle(self, name: str) -> Cycle | None:
        return next((c for c in self.cycles if c.name == name), None)

    def cycle_for(self, day: dt.date) -> Cycle | None:
        """The cycle a day falls in (an experiment's start date gives its cycle)."""
        return next((c for c in self.cycles if c.contains(day)), None)

    def default_version(self, app: App, cycle: Cycle | None = None) -> AppVersion:
        """The cycle's pin; else the newest current version; else the newest supported; else the newest."""
        if cycle and app.name in cycle.pins:
            pinned = app.version(cycle.pins[app.name])
            if pinned is not None:
                return pinned
        for status in STATUSES:
            candidates = [v for v in app.versions if v.status == status]
            if candidates:
                return max(candidates, key=lambda v: version_key(v.version))
        raise AppError(f"{app.name} has no versions")  # the parser refuses this; kept for safety

    def resolve(self, ref: str, cycle: Cycle | None = None) -> AppVersion:
        """``NAME`` (the default version) or ``NAME@VERSION`` → the version; :class:`AppError` names what exists."""
        name, _, version = ref.partition("@")
        app = self.app(name)
        if app is None:
            known = ", ".join(a.name for a in self.apps) or "none (is VISA_APPS_CATALOG set?)"
            raise AppError(f"There is no app named {name!r}. Apps: {known}.")
        if not version:
            return self.default_version(app, cycle)
        found = app.version(version)
        if found is None:
            versions = ", ".join(v.version for v in app.versions)
            raise AppError(f"{app.name} has no version {version!r}. Versions: {versions}.")
        return found

    def all_versions(self) -> list[AppVersion]:
        return [v for app in self.apps for v in app.versions]


# -- parsing -------------------------------------------------------------------------------------------------
def _kernel(node: Node) -> Kernel:
    node.mapping(allowed={"language", "argv"})
    language = node.key("language").text()
    argv_node = node.key("argv", None)
    if argv_node.value is None:
        if language not in KERNEL_ARGV:
            raise argv_node.error(f"is required for language {language!r} (known defaults: "
                                  f"{', '.join(sorted(KERNEL_ARGV))})")
        argv = KERNEL_ARGV[language]
    else:
        argv = argv_node.text_list()
        if "{connection_file}" not in argv:
            raise argv_node.error("must contain {connection_file}")
    return Kernel(language, tuple(argv))


def _image_path(node: Node, base: Path, home: Path | None) -> Path:
    text = node.text()
    path = Path(text).expanduser() if home is None else Path(text.replace("~", str(home), 1)
                                                             if text.startswith("~") else text)
    return path if path.is_absolute() else base / path


def _version(node: Node, app: dict[str, Any], base: Path, user: bool, home: Path | None) -> AppVersion:
    node.mapping(allowed={"version", "image", "digest", "status", "kernel", "notes", "command"})
    version_node = node.key("version")
    version = str(version_node.value) if isinstance(version_node.value, int | float) else version_node.text()
    if not _VERSION.match(version):
        raise version_node.error(f"must be letters, digits and . _ + - (got {version!r})")
    digest_node = node.key("digest", None)
    digest = digest_node.optional_text()
    if digest is None and not user:
        raise digest_node.error("is required: the sha256 of the image's squashfs partition "
                                "(visa-app digest IMAGE prints it)")
    if digest is not None and not _DIGEST.match(digest):
        raise digest_node.error(f"must look like sha256:<64 hex digits>, got {digest!r}")
    kernel_node = node.key("kernel", None)
    kernel = _kernel(kernel_node) if kernel_node.value is not None else app["kernel"]
    command_node = node.key("command", None)
    return AppVersion(
        app=app["name"], version=version, title=app["title"], kind=app["kind"],
        image=_image_path(node.key("image"), base, home), digest=digest,
        status=node.key("status", "current").text(choices=set(STATUSES)),
        description=app["description"], instruments=app["instruments"], kernel=kernel,
        command=command_node.text_list() if command_node.value is not None else app["command"],
        notes=node.key("notes", "").value or "", user_provided=user, source=node.source,
    )


def _app(node: Node, base: Path, user: bool, home: Path | None) -> App:
    node.mapping(allowed={"name", "title", "description", "kind", "instruments", "kernel", "command", "versions"})
    name_node = node.key("name")
    name = name_node.text()
    if not _NAME.match(name):
        raise name_node.error(f"must be lower-case letters, digits and . _ - (got {name!r})")
    kind = node.key("kind", "command").text(choices=set(KINDS))
    kernel_node = node.key("kernel", None)
    kernel = _kernel(kernel_node) if kernel_node.value is not None else None
    if kind == "kernel" and kernel is None:
        raise kernel_node.error("is required for kind kernel (e.g. {language: python})")
    command_node = node.key("command", None)
    fields = {
        "name": name, "title": node.key("title", name).text(), "kind": kind, "kernel": kernel,
        "description": node.key("description", "").value or "",
        "instruments": node.key("instruments", []).text_list(),
        "command": command_node.text_list() if command_node.value is not None else (),
    }
    versions_node = node.key("versions")
    versions = [_version(v, fields, base, user, home) for v in versions_node.items()]
    if not versions:
        raise versions_node.error("must list at least one version")
    seen: set[str] = set()
    for item, version in zip(versions_node.items(), versions, strict=True):
        if version.version in seen:
            raise item.key("version").error(f"duplicate version {version.version!r} of {name}")
        seen.add(version.version)
    return App(name=name, title=fields["title"], kind=kind, versions=tuple(versions),
               description=fields["description"], instruments=fields["instruments"], user_provided=user)


def _cycle(node: Node) -> Cycle:
    node.mapping(allowed={"name", "starts", "ends", "pins"})
    starts, ends_node = node.key("starts").date(), node.key("ends")
    ends = ends_node.date()
    if ends < starts:
        raise ends_node.error(f"must not be before starts ({starts})")
    pins = {}
    for app, version in node.key("pins", {}).mapping().items():
        pins[app] = str(version.value) if isinstance(version.value, int | float) else version.text()
    return Cycle(name=str(node.key("name").value), starts=starts, ends=ends, pins=pins)


def _bind(node: Node) -> Bind:
    node.mapping(allowed={"source", "target", "mode"})
    target_node = node.key("target", node.key("source").value)
    target = target_node.text()
    if not target.startswith("/"):
        raise target_node.error(f"must be an absolute path in the container, got {target!r}")
    return Bind(node.key("source").text(), target, node.key("mode", "ro").text(choices={"ro", "rw"}))


@dataclass
class _Parts:
    apps: list[tuple[Node, App]] = field(default_factory=list)
    cycles: list[tuple[Node, Cycle]] = field(default_factory=list)
    binds: list[Bind] = field(default_factory=list)


def _parse_document(root: Node, parts: _Parts, *, user: bool, home: Path | None = None) -> None:
    allowed = {"apps"} if user else {"apps", "cycles", "binds"}
    keys = root.mapping(allowed=allowed)
    base = Path(root.source).resolve().parent
    for item in root.key("apps", []).items():
        parts.apps.append((item, _app(item, base, user, home)))
    if "cycles" in keys:
        parts.cycles.extend((item, _cycle(item)) for item in keys["cycles"].items())
    if "binds" in keys:
        parts.binds.extend(_bind(item) for item in keys["binds"].items())


def catalog_files(location: str | Path) -> list[Path]:
    """The YAML files of a catalog location: the file itself, or a directory's ``*.yaml``/``*.yml`` in order."""
    path = Path(location)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith("."))
    return [path]


def parse_site_catalog(documents: list[Node]) -> AppCatalog:
    """Validate and merge the site's catalog documents; a duplicate app or cycle is an error naming both places."""
    parts = _Parts()
    for document in documents:
        _parse_document(document, parts, user=False)
    _check_unique([(node, app.name) for node, app in parts.apps], "app")
    _check_unique([(node, cycle.name) for node, cycle in parts.cycles], "cycle")
    apps = {app.name: app for _node, app in parts.apps}
    for node, cycle in parts.cycles:
        for app_name, version in cycle.pins.items():
            pin = node.key("pins").key(app_name)
            if app_name not in apps:
                raise pin.error(f"unknown app {app_name!r}")
            if apps[app_name].version(version) is None:
                versions = ", ".join(v.version for v in apps[app_name].versions)
                raise pin.error(f"{app_name} has no version {version!r} (versions: {versions})")
    return AppCatalog(apps=tuple(apps.values()), cycles=tuple(c for _n, c in parts.cycles), binds=tuple(parts.binds))


def _check_unique(named: list[tuple[Node, str]], what: str) -> None:
    seen: dict[str, Node] = {}
    for node, name in named:
        if name in seen:
            first = seen[name]
            raise node.key("name").error(f"duplicate {what} {name!r} (also in {first.source}: {first.path})")
        seen[name] = node


def load_site_catalog(locations: list[str | Path]) -> AppCatalog:
    """Read and validate the site catalog from files or directories (raises :class:`SiteDataError`)."""
    documents = [load_yaml(path) for location in locations for path in catalog_files(location)]
    return parse_site_catalog(documents)


def load_user_apps(path: Path, site: AppCatalog, home: Path | None = None) -> tuple[list[App], list[str]]:
    """Her registered images (marked user-provided) and the problems found; a broken file loses nothing else."""
    if not path.exists():
        return [], []
    try:
        parts = _Parts()
        _parse_document(load_yaml(path), parts, user=True, home=home)
    except SiteDataError as exc:
        return [], [f"Your registered apps could not be read: {exc}"]
    apps, problems = [], []
    for node, app in parts.apps:
        if site.app(app.name) is not None:
            problems.append(f"{node.source}: {node.path}.name: {app.name!r} is also a site app; rename your "
                            "image (visa-app register --name ...)")
        elif any(a.name == app.name for a in apps):
            problems.append(f"{node.source}: {node.path}.name: duplicate app {app.name!r}")
        else:
            apps.append(app)
    return apps, problems


def with_user_apps(site: AppCatalog, apps: list[App], problems: list[str]) -> AppCatalog:
    return AppCatalog(apps=site.apps + tuple(apps), cycles=site.cycles, binds=site.binds,
                      problems=site.problems + tuple(problems))
