"""Read site data YAML with errors that name the file, the key path and what is wrong.

Every YAML file an operator writes (site catalog, demo User Office, later apps and Dask profiles) is read
through :class:`Node`, which remembers where each value came from, so that a mistake deep in a file is
reported as ``catalog.yaml: instruments[2].max_lifetime_hours: must be a number > 0, got 'abc'``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


class SiteDataError(ValueError):
    """A site data file is unreadable or invalid; the message names file, key path and problem."""

    def __init__(self, source: str, path: str, problem: str):
        self.source, self.path, self.problem = source, path, problem
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {problem}")


_MISSING = object()


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Node:
    """A value from a YAML document together with its key path, for precise errors."""

    def __init__(self, value: Any, source: str, path: str = ""):
        self.value, self.source, self.path = value, source, path

    # -- navigation -------------------------------------------------------------------------------
    def error(self, problem: str) -> SiteDataError:
        return SiteDataError(self.source, self.path, problem)

    def _child_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def mapping(self, allowed: set[str] | None = None) -> dict[str, Node]:
        """This value as a mapping; with ``allowed``, unknown keys are errors (typos do not pass silently)."""
        if not isinstance(self.value, dict):
            raise self.error(f"must be a mapping, got {_describe(self.value)}")
        children = {}
        for key, value in self.value.items():
            if not isinstance(key, str):
                raise self.error(f"keys must be strings, got {_describe(key)}")
            if allowed is not None and key not in allowed:
                raise Node(value, self.source, self._child_path(key)).error(
                    f"unknown key (allowed here: {', '.join(sorted(allowed))})"
                )
            children[key] = Node(value, self.source, self._child_path(key))
        return children

    def key(self, name: str, default: Any = _MISSING) -> Node:
        """The child ``name`` of this mapping; missing and no default → an error naming the key."""
        if not isinstance(self.value, dict):
            raise self.error(f"must be a mapping, got {_describe(self.value)}")
        if name not in self.value or self.value[name] is None:
            if default is _MISSING:
                raise Node(None, self.source, self._child_path(name)).error("is required")
            return Node(default, self.source, self._child_path(name))
        return Node(self.value[name], self.source, self._child_path(name))

    def items(self) -> Iterator[Node]:
        """The entries of this list."""
        if not isinstance(self.value, list):
            raise self.error(f"must be a list, got {_describe(self.value)}")
        for index, value in enumerate(self.value):
            yield Node(value, self.source, self._child_path(index))

    # -- scalars ----------------------------------------------------------------------------------
    def text(self, *, choices: set[str] | None = None) -> str:
        if not isinstance(self.value, str) or not self.value.strip():
            raise self.error(f"must be a non-empty string, got {_describe(self.value)}")
        if choices is not None and self.value not in choices:
            raise self.error(f"must be one of {', '.join(sorted(choices))}; got {self.value!r}")
        return self.value.strip()

    def optional_text(self) -> str | None:
        return None if self.value is None else self.text()

    def number(self, *, minimum: float | None = None, integer: bool = False, strict_min: bool = False) -> Any:
        kind = "an integer" if integer else "a number"
        ok = isinstance(self.value, int) if integer else isinstance(self.value, int | float)
        if isinstance(self.value, bool) or not ok:
            raise self.error(f"must be {kind}, got {_describe(self.value)}")
        if minimum is not None and (self.value <= minimum if strict_min else self.value < minimum):
            relation = ">" if strict_min else "≥"
            raise self.error(f"must be {kind} {relation} {minimum:g}, got {self.value!r}")
        return self.value

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"must be true or false, got {_describe(self.value)}")
        return self.value

    def text_list(self) -> tuple[str, ...]:
        return tuple(item.text() for item in self.items())

    def date(self) -> dt.date:
        value = self.value
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(f"must be a date like 2026-05-04, got {_describe(value)}")


def load_yaml(path: str | Path) -> Node:
    """Parse a YAML file into a root :class:`Node`; syntax errors name the file and line."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SiteDataError(source, "", f"cannot read file ({exc.strerror or exc})") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SiteDataError(source, "", f"{where}invalid YAML ({problem})") from exc
    if document is None:
        raise SiteDataError(source, "", "file is empty")
    return Node(document, source)
