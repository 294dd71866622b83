"""Fault injection and request counting.

Both are touched from the test thread and from the simulator's event loop, so
they guard their data with a lock.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FaultRule:
    """Make matching requests fail and/or hang.

    ``method`` is an HTTP method or ``*``; ``path`` a regular expression searched in
    the request path (e.g. ``r"/compute/v2\\.1/servers/detail$"``). ``status`` answers
    the request with that code and the service's error body (``None``: no error,
    only ``delay``); ``count`` is how many requests it hits (``None``: every one).
    """

    path: str
    method: str = "*"
    status: int | None = 500
    delay: float = 0.0
    count: int | None = 1
    message: str | None = None
    hits: int = 0

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        self._regex = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method.upper())) and bool(self._regex.search(path))

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.hits >= self.count

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


@dataclass
class ServerFault:
    """The next ``count`` server creations end in ERROR with this fault."""

    count: int = 1
    message: str = "No valid host was found. There are not enough hosts available."
    code: int = 500


@dataclass
class Faults:
    """The simulator's fault plan; use it from any thread."""

    rules: list[FaultRule] = field(default_factory=list)
    server_faults: list[ServerFault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(
        self,
        path: str,
        method: str = "*",
        status: int | None = 500,
        delay: float = 0.0,
        count: int | None = 1,
        message: str | None = None,
    ) -> FaultRule:
        """Add a request rule (see :class:`FaultRule`) and return it."""
        rule = FaultRule(path=path, method=method, status=status, delay=delay, count=count, message=message)
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail_server_creates(
        self,
        count: int = 1,
        message: str = ServerFault.message,
        code: int = 500,
    ) -> None:
        """Let the next ``count`` created servers go to ERROR with ``message``."""
        with self._lock:
            self.server_faults.append(ServerFault(count=count, message=message, code=code))

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first live rule matching this request, counting the hit."""
        with self._lock:
            for rule in self.rules:
                if not rule.exhausted and rule.matches(method, path):
                    rule.hits += 1
                    return rule
        return None

    def take_server_fault(self) -> ServerFault | None:
        """Consume one planned server failure, if any."""
        with self._lock:
            while self.server_faults:
                fault = self.server_faults[0]
                if fault.count <= 0:
                    self.server_faults.pop(0)
                    continue
                fault.count -= 1
                return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.server_faults.clear()

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rules": [r.to_dict() for r in self.rules],
                "server_faults": [asdict(f) for f in self.server_faults],
            }


class RequestStats:
    """Counts requests per ``"METHOD /path/{template}"``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self, method: str, template: str) -> None:
        with self._lock:
            self._counts[f"{method.upper()} {template}"] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
