"""Check predicates registered by id, which the rule files refer to.

A check reads facts and returns a `CheckResult`:

- `hit`: the evidence supports the cause (or, under `rule_out`, rules it out);
- `miss`: the inputs it needs were read and do not show it;
- `unknown`: the inputs it needs are absent, with the reason.

Checks are registered explicitly by `default_registry()`, never as a side
effect of importing a module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping

from doctor.facts import FactSet
from doctor.model import Evidence

HIT = "hit"
MISS = "miss"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class CheckResult:
    result: str
    evidence: tuple[Evidence, ...] = ()
    reason: str = ""
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None


CheckFunction = Callable[[FactSet, Mapping[str, Any]], CheckResult]


@dataclass(frozen=True)
class CheckSpec:
    """A registered check: its id, what it looks for, and the reader kinds it needs.

    `needs` lists reader kinds; the check is `unknown` unless at least one of
    them was read. An empty tuple means the check decides that itself.
    """

    check_id: str
    function: CheckFunction
    description: str
    needs: tuple[str, ...] = ()
    params: tuple[str, ...] = field(default_factory=tuple)


class CheckRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, CheckSpec] = {}

    def register(
        self,
        check_id: str,
        function: CheckFunction,
        description: str,
        needs: tuple[str, ...] = (),
        params: tuple[str, ...] = (),
    ) -> None:
        if check_id in self._specs:
            raise ValueError(f"check id {check_id!r} is registered twice")
        self._specs[check_id] = CheckSpec(check_id, function, description, needs, params)

    def get(self, check_id: str) -> CheckSpec | None:
        return self._specs.get(check_id)

    def ids(self) -> list[str]:
        return sorted(self._specs)

    def __contains__(self, check_id: str) -> bool:
        return check_id in self._specs


def hit(*evidence: Evidence, count: int = 0, first_seen: datetime | None = None,
        last_seen: datetime | None = None, reason: str = "") -> CheckResult:
    return CheckResult(HIT, tuple(evidence), reason, count, first_seen, last_seen)


def miss(*evidence: Evidence, reason: str = "") -> CheckResult:
    return CheckResult(MISS, tuple(evidence), reason)


def unknown(reason: str) -> CheckResult:
    return CheckResult(UNKNOWN, (), reason)
