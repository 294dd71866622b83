"""Lifetime rules of the site catalog: how long instances live, when they stop for inactivity, who may extend.

The catalog's ``lifetimes:`` section (all keys optional; VISA's defaults apply)::

    lifetimes:
      users: {default: 24h, max: 14d, inactivity: 4d}   # people without the staff role
      staff: {default: 24h, max: 60d, inactivity: 8d}
      warnings: [48h, 1h]          # warn this long before the end of life
      inactivity_warning: 24h      # ... and this long before an inactivity stop
      membership_grace: 1h         # a removed member's instance stops this long after the warning
      extension:
        step: 24h                  # what one "Extend" asks for
        auto: all                  # who is extended at once: all | staff | none
        auto_up_to: 7d             # ... while the whole lifetime stays within this
        max: 60d                   # no request beyond this whole lifetime (admins approve up to here)
      rules:                       # per instrument / flavour / image; the first that matches wins
        - instruments: [ODIN]
          flavours: [gpu-large]
          users: {max: 3d}
          extension: {auto: none}

Durations are numbers of hours or strings such as ``90s``, ``30m``, ``48h``, ``14d``. An instrument's
``max_lifetime_hours`` / ``default_lifetime_hours`` are its users' ``max`` / ``default`` (a matching rule
wins over them). Pure: parsing and resolution only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from .sitedata import Node

__all__ = ["AUTO_CHOICES", "LifetimeLimits", "LifetimeRules", "RoleLimits", "parse_duration_hours", "parse_lifetimes"]

AUTO_CHOICES = ("all", "staff", "none")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_HOURS = {"s": 1 / 3600, "m": 1 / 60, "h": 1.0, "d": 24.0, "w": 168.0}


def parse_duration_hours(node: Node, *, allow_zero: bool = False) -> float:
    """A duration as hours: a number (hours) or ``'30m'``, ``'48h'``, ``'14d'``; errors name file and key."""
    value = node.value
    if isinstance(value, bool):
        raise node.error(f"must be a duration like 30m, 48h or 14d (or a number of hours), got {value!r}")
    if isinstance(value, int | float):
        hours = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        hours = float(match.group(1)) * _UNIT_HOURS[match.group(2)]
    else:
        raise node.error(f"must be a duration like 30m, 48h or 14d (or a number of hours), got {value!r}")
    if hours < 0 or (hours == 0 and not allow_zero):
        raise node.error(f"must be a duration > 0, got {value!r}")
    return hours


@dataclass(frozen=True)
class RoleLimits:
    """Lifetime limits of one kind of person (users or staff); hours."""

    default: float
    max: float
    inactivity: float | None  # None: never stopped for inactivity


@dataclass(frozen=True)
class LifetimeLimits:
    """Everything the sessions service applies to one instance (resolved for its instrument, flavour, image, role)."""

    default_hours: float
    max_hours: float
    inactivity_hours: float | None
    warnings_hours: tuple[float, ...]  # before the end of life, largest first
    inactivity_warning_hours: float | None
    membership_grace_hours: float
    extension_step_hours: float
    auto_extend: bool  # extended at once (within auto_up_to_hours) without approval
    auto_up_to_hours: float
    extension_max_hours: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "default_hours": self.default_hours, "max_hours": self.max_hours,
            "inactivity_hours": self.inactivity_hours, "warnings_hours": list(self.warnings_hours),
            "inactivity_warning_hours": self.inactivity_warning_hours,
            "membership_grace_hours": self.membership_grace_hours,
            "extension_step_hours": self.extension_step_hours, "auto_extend": self.auto_extend,
            "auto_up_to_hours": self.auto_up_to_hours, "extension_max_hours": self.extension_max_hours,
        }


@dataclass(frozen=True)
class _Extension:
    step: float | None = None
    auto: str | None = None
    auto_up_to: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class _Layer:
    """One level of settings (the section's top level or one rule); ``None`` means 'not set here'."""

    users: dict[str, float | None] = field(default_factory=dict)
    staff: dict[str, float | None] = field(default_factory=dict)
    warnings: tuple[float, ...] | None = None
    inactivity_warning: float | None = None
    membership_grace: float | None = None
    extension: _Extension = field(default_factory=_Extension)


@dataclass(frozen=True)
class _Rule:
    instruments: tuple[str, ...]
    flavours: tuple[str, ...]
    images: tuple[str, ...]
    layer: _Layer
    path: str

    def matches(self, instrument: str, flavour: str, image: str) -> bool:
        return ((not self.instruments or instrument.casefold() in {i.casefold() for i in self.instruments})
                and (not self.flavours or flavour in self.flavours)
                and (not self.images or image in self.images))


# VISA's defaults: users 14 days (inactivity 4), staff 60 days (inactivity 8); mails 48 h and 1 h before the end
_BUILTIN = _Layer(
    users={"default": 24.0, "max": 14 * 24.0, "inactivity": 4 * 24.0},
    staff={"default": 24.0, "max": 60 * 24.0, "inactivity": 8 * 24.0},
    warnings=(48.0, 1.0),
    inactivity_warning=24.0,
    membership_grace=1.0,
    extension=_Extension(step=24.0, auto="all", auto_up_to=7 * 24.0, max=60 * 24.0),
)


@dataclass(frozen=True)
class LifetimeRules:
    """The parsed ``lifetimes:`` section; :meth:`resolve` gives the limits of one instance."""

    top: _Layer = field(default_factory=_Layer)
    rules: tuple[_Rule, ...] = ()

    def resolve(self, instrument: str, flavour: str, image: str, staff: bool,
                instrument_defaults: dict[str, float] | None = None) -> LifetimeLimits:
        """The limits for an instance of ``instrument``/``flavour``/``image`` owned by staff or not.

        ``instrument_defaults`` (``{"default": h, "max": h}``) are the instrument's own users' keys.
        """
        layers = [_BUILTIN, self.top]
        if instrument_defaults:
            layers.append(_Layer(users=dict(instrument_defaults)))
        rule = next((r for r in self.rules if r.matches(instrument, flavour, image)), None)
        if rule is not None:
            layers.append(rule.layer)
        role = "staff" if staff else "users"
        limits: dict[str, float | None] = {}
        merged = _BUILTIN
        for layer in layers:
            for key, value in getattr(layer, role).items():
                limits[key] = value
            merged = _merge(merged, layer)
        ext = merged.extension
        auto = ext.auto or "all"
        max_hours = float(limits["max"])  # type: ignore[arg-type]
        default = min(float(limits["default"]), max_hours)  # type: ignore[arg-type]
        return LifetimeLimits(
            default_hours=default,
            max_hours=max_hours,
            inactivity_hours=limits.get("inactivity"),
            warnings_hours=tuple(sorted(merged.warnings or (), reverse=True)),
            inactivity_warning_hours=merged.inactivity_warning,
            membership_grace_hours=float(merged.membership_grace or 0.0),
            extension_step_hours=float(ext.step or 24.0),
            auto_extend=auto == "all" or (auto == "staff" and staff),
            auto_up_to_hours=float(ext.auto_up_to or 0.0),
            extension_max_hours=max(float(ext.max or 0.0), max_hours),
        )


def _merge(base: _Layer, over: _Layer) -> _Layer:
    ext = base.extension
    o = over.extension
    return _Layer(
        warnings=over.warnings if over.warnings is not None else base.warnings,
        inactivity_warning=over.inactivity_warning if over.inactivity_warning is not None else base.inactivity_warning,
        membership_grace=over.membership_grace if over.membership_grace is not None else base.membership_grace,
        extension=replace(ext, **{k: v for k, v in o.__dict__.items() if v is not None}),
    )


_ROLE_KEYS = {"default", "max", "inactivity"}
_LAYER_KEYS = {"users", "staff", "warnings", "inactivity_warning", "membership_grace", "extension"}


def _role(node: Node) -> dict[str, float | None]:
    keys = node.mapping(allowed=_ROLE_KEYS)
    values: dict[str, float | None] = {}
    for key in ("default", "max"):
        if key in keys:
            values[key] = parse_duration_hours(keys[key])
    if "inactivity" in keys:
        # 'never' (or false) switches the inactivity stop off
        values["inactivity"] = None if keys["inactivity"].value in ("never", False) else \
            parse_duration_hours(keys["inactivity"])
    if "default" in values and "max" in values and values["default"] > values["max"]:  # type: ignore[operator]
        raise keys["default"].error(f"must not exceed max ({keys['max'].value}), got {keys['default'].value!r}")
    return values


def _layer(node: Node, extra: set[str] = frozenset()) -> _Layer:  # type: ignore[assignment]
    keys = node.mapping(allowed=_LAYER_KEYS | extra)
    warnings = None
    if "warnings" in keys:
        warnings = tuple(parse_duration_hours(item) for item in keys["warnings"].items())
    extension = _Extension()
    if "extension" in keys:
        ext = keys["extension"].mapping(allowed={"step", "auto", "auto_up_to", "max"})
        extension = _Extension(
            step=parse_duration_hours(ext["step"]) if "step" in ext else None,
            auto=ext["auto"].text(choices=set(AUTO_CHOICES)) if "auto" in ext else None,
            auto_up_to=parse_duration_hours(ext["auto_up_to"]) if "auto_up_to" in ext else None,
            max=parse_duration_hours(ext["max"]) if "max" in ext else None,
        )
    return _Layer(
        users=_role(keys["users"]) if "users" in keys else {},
        staff=_role(keys["staff"]) if "staff" in keys else {},
        warnings=warnings,
        inactivity_warning=parse_duration_hours(keys["inactivity_warning"]) if "inactivity_warning" in keys else None,
        membership_grace=(parse_duration_hours(keys["membership_grace"], allow_zero=True)
                          if "membership_grace" in keys else None),
        extension=extension,
    )


def parse_lifetimes(node: Node, instruments: set[str], flavours: set[str], images: set[str]) -> LifetimeRules:
    """Validate the catalog's ``lifetimes:`` section; names are checked against the catalog's."""
    if node.value is None or node.value == {}:
        return LifetimeRules()
    keys = node.mapping(allowed=_LAYER_KEYS | {"rules"})
    top = _layer(node, extra={"rules"})
    rules = []
    known = {"instruments": {i.casefold() for i in instruments}, "flavours": flavours, "images": images}
    for rule_node in keys["rules"].items() if "rules" in keys else ():
        rule_keys = rule_node.mapping(allowed=_LAYER_KEYS | set(known))
        selectors: dict[str, tuple[str, ...]] = {}
        for what, names in known.items():
            listed = rule_keys[what].text_list() if what in rule_keys else ()
            for item, name in zip(rule_keys[what].items() if what in rule_keys else (), listed, strict=True):
                if (name.casefold() if what == "instruments" else name) not in names:
                    raise item.error(f"unknown {what[:-1]} {name!r}")
            selectors[what] = listed
        rules.append(_Rule(selectors["instruments"], selectors["flavours"], selectors["images"],
                           _layer(rule_node, extra=set(known)), rule_node.path))
    return LifetimeRules(top=top, rules=tuple(rules))
