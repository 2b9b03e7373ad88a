"""The rows and batches of counts that the access-log summary is built from.

Nothing here imports numpy or Arrow: the main process of a forked scan reads
the workers' replies, made of these classes, and only the workers import the
scanning modules.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache

from doctor.model import ParseProblem
from doctor.parsers.accesslog import AccessLogEntry

# Columns of a group key, in order.
KEY_FIELDS = ("minute", "response_code", "response_flags", "response_code_details",
              "upstream_cluster", "route_name", "authority")


@dataclass(frozen=True)
class Row:
    """The fields of one access-log entry that the summary uses.

    `second` is the start time in UTC as `YYYY-MM-DDTHH:MM:SS`, or None when
    the entry has no valid start time; `minute` is its first 16 characters.
    """

    source: str
    line: int
    second: str | None
    response_code: int | None
    response_flags: tuple[str, ...]
    response_code_details: str | None
    upstream_cluster: str | None
    route_name: str | None
    authority: str | None
    path: str | None
    downstream_remote_address: str | None
    upstream_host: str | None

    @property
    def minute(self) -> str | None:
        return None if self.second is None else self.second[:16]

    @property
    def key(self) -> tuple:
        return (self.minute, self.response_code, self.response_flags, self.response_code_details,
                self.upstream_cluster, self.route_name, self.authority)

    @property
    def failed(self) -> bool:
        return is_failure(self.response_code, self.response_flags)


def is_failure(code: int | None, flags: tuple[str, ...]) -> bool:
    """Return True for an entry without a response, with a 4xx or 5xx code, or with a response flag."""
    return code is None or code == 0 or code >= 400 or bool(flags)


def row_from_entry(entry: AccessLogEntry) -> Row:
    """Reduce an entry of the tolerant parser to the fields the summary uses."""
    return Row(
        source=entry.source,
        line=entry.line,
        second=second_of(entry.timestamp),
        response_code=entry.response_code,
        response_flags=entry.response_flags,
        response_code_details=entry.response_code_details,
        upstream_cluster=entry.upstream_cluster,
        route_name=entry.route_name,
        authority=entry.authority,
        path=entry.path,
        downstream_remote_address=entry.downstream_remote_address,
        upstream_host=entry.upstream_host,
    )


def second_of(moment: datetime | None) -> str | None:
    """Return `YYYY-MM-DDTHH:MM:SS` in UTC; a time without a zone is taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


@lru_cache(maxsize=65536)
def valid_second(second: str) -> str | None:
    """Return `second` when it names a real time, else None (as the parser's timestamp would be)."""
    try:
        datetime.fromisoformat(second)
    except ValueError:
        return None
    return second


@dataclass
class KindSpan:
    """Entries of one failure kind in a batch: how many, and the first and last line."""

    count: int
    first_line: int
    first_second: str | None
    last_line: int
    last_second: str | None

    def merge(self, other: KindSpan) -> None:
        self.count += other.count
        if other.first_line < self.first_line:
            self.first_line, self.first_second = other.first_line, other.first_second
        if other.last_line > self.last_line:
            self.last_line, self.last_second = other.last_line, other.last_second


@dataclass
class Batch:
    """The contribution of one chunk of lines: grouped counts, failures and problems.

    `kinds` is keyed by (response code, flags, details) of failing entries;
    `paths`, `callers` and `upstream_hosts` count the failing entries by
    path, caller host and upstream host.
    """

    line_count: int = 0
    entries: int = 0
    outside_window: int = 0
    counts: dict[tuple, int] = field(default_factory=dict)
    kinds: dict[tuple, KindSpan] = field(default_factory=dict)
    paths: Counter = field(default_factory=Counter)
    callers: Counter = field(default_factory=Counter)
    upstream_hosts: Counter = field(default_factory=Counter)
    problems: list[ParseProblem] = field(default_factory=list)

    def add_row(self, row: Row, window: tuple[str | None, str | None]) -> None:
        if not _inside(row.second, window):
            self.outside_window += 1
            return
        self.entries += 1
        key = row.key
        self.counts[key] = self.counts.get(key, 0) + 1
        if row.failed:
            kind = (row.response_code, row.response_flags, row.response_code_details)
            self.add_kind(kind, KindSpan(1, row.line, row.second, row.line, row.second))
            _count(self.paths, row.path, 1)
            _count(self.callers, caller_of(row.downstream_remote_address), 1)
            _count(self.upstream_hosts, row.upstream_host, 1)

    def add_kind(self, kind: tuple, span: KindSpan) -> None:
        known = self.kinds.get(kind)
        if known is None:
            self.kinds[kind] = span
        else:
            known.merge(span)


def _count(counter: Counter, value: str | None, count: int) -> None:
    if value is not None:
        counter[value] += count


def caller_of(address: str | None) -> str | None:
    """Return the host of `host:port` (the caller's IP without its ephemeral port)."""
    if address is None:
        return None
    host, colon, port = address.rpartition(":")
    if colon and port.isdigit() and host:
        return host
    return address


def _inside(second: str | None, window: tuple[str | None, str | None]) -> bool:
    start, end = window
    if start is None and end is None:
        return True
    if second is None:
        return False
    return (start is None or second >= start) and (end is None or second < end)
