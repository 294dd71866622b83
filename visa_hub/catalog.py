"""The site catalog: instruments, flavours, images and the rules that tie them together.

One YAML file per site. It is parsed into frozen dataclasses and validated on load; every error names the
file, the key path and what is wrong (see :mod:`visa_hub.sitedata`). This module does no I/O beyond reading
that file and is safe to share between the hub's authenticator and spawners.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .sitedata import Node, SiteDataError, load_yaml

__all__ = ["AccessWindow", "Catalog", "Flavour", "Image", "InstrumentRule", "SiteDataError", "load_catalog"]


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
class InstrumentRule:
    """What experiments on one instrument may use."""

    name: str
    technique: str
    flavours: tuple[str, ...]
    default_flavour: str
    max_lifetime_hours: float
    default_lifetime_hours: float
    images: tuple[str, ...]


@dataclass(frozen=True)
class AccessWindow:
    """How long before an experiment starts and after it ends its members may start instances."""

    days_before_start: int = 30
    days_after_end: int = 365


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

    def flavour(self, name: str) -> Flavour | None:
        return next((f for f in self.flavours if f.name == name), None)

    def image(self, name: str) -> Image | None:
        return next((i for i in self.images if i.name == name), None)

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


def _instrument(node: Node, flavours: set[str], images: set[str]) -> InstrumentRule:
    node.mapping(
        allowed={"name", "technique", "flavours", "default_flavour", "max_lifetime_hours",
                 "default_lifetime_hours", "images"}
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
    max_node = node.key("max_lifetime_hours")
    max_lifetime = float(max_node.number(minimum=0, strict_min=True))
    default_lifetime_node = node.key("default_lifetime_hours", min(24.0, max_lifetime))
    default_lifetime = float(default_lifetime_node.number(minimum=0, strict_min=True))
    if default_lifetime > max_lifetime:
        raise default_lifetime_node.error(
            f"must not exceed max_lifetime_hours ({max_lifetime:g}), got {default_lifetime:g}"
        )
    images_node = node.key("images", sorted(images))
    instrument_images = images_node.text_list()
    for index, item in enumerate(images_node.items()):
        if instrument_images[index] not in images:
            raise item.error(f"unknown image {instrument_images[index]!r} (defined: {', '.join(sorted(images))})")
    return InstrumentRule(
        name=node.key("name").text(),
        technique=node.key("technique", "").value or "",
        flavours=allowed_flavours,
        default_flavour=default_flavour,
        max_lifetime_hours=max_lifetime,
        default_lifetime_hours=default_lifetime,
        images=instrument_images,
    )


def parse_catalog(root: Node) -> Catalog:
    """Validate a parsed catalog document (see :func:`load_catalog`)."""
    root.mapping(allowed={"site", "access", "flavours", "images", "default_image", "instruments"})

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

    instrument_nodes = list(root.key("instruments").items())
    if not instrument_nodes:
        raise root.key("instruments").error("must define at least one instrument")
    instruments = [_instrument(n, {f.name for f in flavours}, image_names) for n in instrument_nodes]
    _unique(instrument_nodes, [i.name.casefold() for i in instruments], "instrument")

    access_node = root.key("access", {})
    access_node.mapping(allowed={"days_before_start", "days_after_end"})
    access = AccessWindow(
        days_before_start=access_node.key("days_before_start", 30).number(minimum=0, integer=True),
        days_after_end=access_node.key("days_after_end", 365).number(minimum=0, integer=True),
    )
    return Catalog(
        site_name=root.key("site", "visa-hub").text(),
        flavours=tuple(flavours),
        images=tuple(images),
        default_image=default_image,
        instruments=tuple(instruments),
        access=access,
        source=root.source,
    )


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a site catalog YAML file; raises :class:`SiteDataError` naming file and key."""
    return parse_catalog(load_yaml(path))
