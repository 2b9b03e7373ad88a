"""UTC times, durations and short texts as the incident summary writes them.

Every time in the summary is UTC in ISO 8601 with milliseconds and a `Z`
suffix, and the JSON Schema checks that form. These helpers are the one
place that writes them.
"""

from __future__ import annotations

import shlex
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

# Finding statuses that keep a cause in play; the first such finding is the root cause.
ACTIVE_STATUSES = ("confirmed", "likely", "possible")


def last_line(text: str, limit: int = 200) -> str:
    """Return the last non-empty line of a command's message, where tools put the summary."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return shorten(lines[-1], limit) if lines else ""


def argv_text(argv: Sequence[Any]) -> str:
    return " ".join(shlex.quote(str(part)) for part in argv)


def shorten(text: str, limit: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def iso(moment: datetime | str | None) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = parse_iso(moment)
    return utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def clock_text(text: str | None) -> str:
    return parse_iso(text).strftime("%Y-%m-%d %H:%M:%S") if text else "?"


def first_of(values: Iterable[str | None]) -> str | None:
    present = [iso(value) for value in values if value]
    return min(present) if present else None


def last_of(values: Iterable[str | None]) -> str | None:
    present = [iso(value) for value in values if value]
    return max(present) if present else None


def format_seconds(seconds: float) -> str:
    """Write a duration as `1h 02m`, `3m 05s` or `4.2s`; a negative one keeps its sign."""
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{sign}{minutes}m {rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}h {minutes:02d}m"


def evidence_ref(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"source": item.get("source", ""), "line": item.get("line"),
            "text": shorten(item.get("text") or "", 400), "note": item.get("note") or ""}


def root_finding(findings: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for finding in findings:
        if finding.get("status") in ACTIVE_STATUSES:
            return finding
    return None
