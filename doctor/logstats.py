"""Streaming summary of Envoy access-log files, plain or gzip, in a time window.

Owns the reading of whole access-log files in bounded chunks and the seek to
a time window by binary search on byte offsets. It also owns the summary that
`mesh-doctor logs` prints and the UI chart draws. The summary has per-minute
counts by response code, flags, details, upstream cluster, route and
authority, failure kinds with their first and last occurrence, top failing
paths, callers and upstream hosts, the error-rate series, and the malformed
lines with their location.
Memory depends on the chunk size and on how many distinct values the logs
contain, not on how many lines they have.
"""

from __future__ import annotations

import copy
import ctypes
import gzip
import logging
import re
import sys
import threading
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Mapping, Sequence

from doctor import logbytes
from doctor.logscan import (
    KEY_FIELDS,
    Batch,
    KindSpan,
    is_failure,
    row_from_entry,
    scan_chunk,
    scan_text,
    second_of,
)
from doctor.logworkers import ScanWorkers, WorkerDied
from doctor.model import ParseProblem
from doctor.parsers import accesslog
from doctor.parsers.accesslog import AccessLogEntry

logger = logging.getLogger(__name__)

CHUNK_BYTES = 4 * 1024 * 1024
# Envoy writes an entry when the request ends, but logs its start time, so the
# file is in time order only up to the longest request. The seek starts this
# much before the window and stops this much after it.
SEEK_SLACK = timedelta(minutes=2)
# Below this many bytes between the binary-search bounds the file is read.
_SEEK_GRANULARITY = 64 * 1024
# Files up to this size are read whole: seeking would not read fewer bytes.
SMALL_FILE_BYTES = 1024 * 1024
_PROBE_BYTES = 64 * 1024
_NEWLINE_PROBE_BYTES = 4096
_BINARY_SNIFF_BYTES = 8192
# A path of "-" reads standard input, as in `kubectl logs POD -c istio-proxy | mesh-doctor logs -`.
STDIN = "-"
STDIN_SOURCE = "<stdin>"
TOP_COUNT = 10
# Distinct paths, callers or hosts kept exactly before the rarest are dropped.
TRACKED_VALUES = 5000
PROBLEMS_KEPT = 200
MAX_FILLED_MINUTES = 7 * 24 * 60
_WORKERS = 2
# mallopt parameters from glibc's malloc.h, and the block size kept for reuse.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEPT_BLOCK_BYTES = 1 << 30
_IN_FLIGHT = 8  # pieces submitted ahead; a waiting piece is only its byte range

_TEXT_TIME = re.compile(r'\[(\d{4}-\d\d-\d\d[T ][^\]]+)\] "')
_JSON_TIME = re.compile(r'"start_time"\s*:\s*"([^"]+)"')
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class LogInputError(ValueError):
    """An option of the log analysis is invalid; the message names the value and the fix."""


def parse_duration(text: str) -> timedelta:
    """Read `90s`, `15m`, `2h` or `1d`."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise LogInputError(f"invalid duration {text!r}: write a number and a unit, "
                            "s, m, h or d (for example 15m)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_time(text: str) -> datetime:
    """Read an ISO 8601 time; a time without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise LogInputError(f"invalid time {text!r}: use ISO 8601, for example "
                            "2026-12-04T20:15:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class Occurrence:
    """Location of an entry: the file (with the byte offset reading began at) and the line."""

    source: str
    line: int
    second: str | None


@dataclass
class FailureKind:
    """Entries with one response code, set of flags and details."""

    response_code: int | None
    response_flags: tuple[str, ...]
    response_code_details: str | None
    count: int
    first: Occurrence
    last: Occurrence


@dataclass
class FileReport:
    """Account of reading one file: its size, the read method, the bytes read and the counts."""

    path: str
    size: int
    compressed: bool
    method: str  # "binary-search", "full-read", "unreadable" or "skipped"
    bytes_read: int = 0
    start_offset: int = 0
    lines: int = 0
    entries: int = 0
    malformed: int = 0
    note: str | None = None


@dataclass
class TopValues:
    """Counts of values kept to a bounded number of distinct values.

    When more than `capacity` distinct values arrive, the rarest half is
    dropped; the counts left are then lower bounds and `approximate` is set.
    """

    capacity: int = TRACKED_VALUES
    counts: Counter = field(default_factory=Counter)
    approximate: bool = False

    def add(self, value: str | None, count: int = 1) -> None:
        if value is None:
            return
        self.counts[value] += count
        self._trim()

    def add_counts(self, counts: Counter) -> None:
        """Add the counts of many values at once, then drop the rarest half when over capacity."""
        self.counts.update(counts)
        self.counts.pop(None, None)
        self._trim()

    def _trim(self) -> None:
        """Keep the `capacity` largest counts once twice as many values are tracked.

        Of the values tied at the smallest count kept, the first ones in the
        counter's order stay. Only the counts are sorted, as integers: adding
        the failing paths of the benchmark's TEXT log took 11 ms that way and
        21 ms with `heapq.nlargest`.
        """
        counts = self.counts
        if len(counts) <= 2 * self.capacity:
            return
        threshold = sorted(counts.values(), reverse=True)[self.capacity - 1]
        largest = {value: count for value, count in counts.items() if count > threshold}
        room = self.capacity - len(largest)
        for value, count in counts.items():
            if room <= 0:
                break
            if count == threshold:
                largest[value] = count
                room -= 1
        self.counts = Counter(largest)
        self.approximate = True

    def top(self, count: int = TOP_COUNT) -> list[tuple[str, int]]:
        """Return the `count` largest counts in the order of `_ranked`, sorting only the values that can be among them."""
        counts = self.counts
        if len(counts) > count > 0:
            smallest = sorted(counts.values(), reverse=True)[count - 1]
            counts = {value: number for value, number in counts.items() if number >= smallest}
        return _ranked(counts)[:count]


@dataclass
class LogSummary:
    """The summary of access-log files in a time window."""

    files: list[FileReport] = field(default_factory=list)
    window_start: str | None = None
    window_end: str | None = None
    entries: int = 0
    failures: int = 0
    outside_window: int = 0
    counts: Counter = field(default_factory=Counter)
    kinds: dict[tuple, FailureKind] = field(default_factory=dict)
    failing_paths: TopValues = field(default_factory=TopValues)
    failing_callers: TopValues = field(default_factory=TopValues)
    failing_upstream_hosts: TopValues = field(default_factory=TopValues)
    malformed: int = 0
    problems: list[ParseProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def totals(self, dimension: str) -> Counter:
        """Return the count of entries by one of KEY_FIELDS (not "minute")."""
        position = KEY_FIELDS.index(dimension)
        result: Counter = Counter()
        for key, count in self.counts.items():
            result[key[position]] += count
        return result

    def minutes(self) -> list[str]:
        """Return every minute from the first to the last entry, gaps included.

        Over a span longer than MAX_FILLED_MINUTES only the minutes with entries
        are returned, so files from far apart days do not make a huge series.
        """
        return _filled_minutes({key[0] for key in self.counts})

    def error_rate(self) -> list[tuple[str, int, int]]:
        """Return (minute, entries, failing entries) for every minute of the series."""
        tables = self._minute_tables()
        return _error_rate(tables, _filled_minutes(tables.entries))

    def failure_series(self) -> dict[str, list[int]]:
        """Return, per failing response code ("0" for no response), its count in every minute."""
        tables = self._minute_tables()
        return _failure_series(tables, _filled_minutes(tables.entries))

    def _minute_tables(self) -> _MinuteTables:
        """Group the counts by minute in one pass, for the series and the tables per dimension.

        One pass fills them all: 4.4 ms on the summary of the benchmark's TEXT
        log, against 12 ms for a pass per series and table. Naming the six
        tables, instead of zipping the key with a list of them, saved 2.5 ms.
        """
        tables = _MinuteTables({}, {}, {}, [{} for _ in KEY_FIELDS[1:]])
        entries, failures, by_code = tables.entries, tables.failures, tables.failures_by_code
        per_code, per_flags, per_details, per_cluster, per_route, per_authority = tables.values
        current: object = object()
        for key, count in self.counts.items():
            minute, code, flags, details, cluster, route, authority = key  # KEY_FIELDS
            if minute != current:  # the keys of one minute mostly come together
                current = minute
                codes = per_code.setdefault(minute, {})
                flag_sets = per_flags.setdefault(minute, {})
                detail_values = per_details.setdefault(minute, {})
                clusters = per_cluster.setdefault(minute, {})
                routes = per_route.setdefault(minute, {})
                authorities = per_authority.setdefault(minute, {})
            entries[minute] = entries.get(minute, 0) + count
            if is_failure(code, flags):
                failures[minute] = failures.get(minute, 0) + count
                if minute is not None:
                    series = by_code.setdefault(str(code or 0), {})
                    series[minute] = series.get(minute, 0) + count
            codes[code] = codes.get(code, 0) + count
            flag_sets[flags] = flag_sets.get(flags, 0) + count
            detail_values[details] = detail_values.get(details, 0) + count
            clusters[cluster] = clusters.get(cluster, 0) + count
            routes[route] = routes.get(route, 0) + count
            authorities[authority] = authorities.get(authority, 0) + count
        return tables

    def failure_kinds(self) -> list[FailureKind]:
        return sorted(self.kinds.values(), key=lambda kind: -kind.count)

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data (the `--format json` contract)."""
        dimensions = KEY_FIELDS[1:]
        tables = self._minute_tables()
        minutes = _filled_minutes(tables.entries)
        series = _error_rate(tables, minutes)
        failure_series = _failure_series(tables, minutes)
        totals, per_minute = _dimension_tables(tables)
        return {
            "window": {"start": self.window_start, "end": self.window_end},
            "files": [vars(report) for report in self.files],
            "entries": self.entries,
            "failures": self.failures,
            "outside_window": self.outside_window,
            "totals": {dimension: _pairs(totals[dimension]) for dimension in dimensions},
            "failure_kinds": [_kind_dict(kind) for kind in self.failure_kinds()],
            "top_failing": {
                name: {"values": [{"value": value, "count": count} for value, count in top.top()],
                       "approximate": top.approximate}
                for name, top in (("paths", self.failing_paths),
                                  ("callers", self.failing_callers),
                                  ("upstream_hosts", self.failing_upstream_hosts))
            },
            "per_minute": [
                {"minute": minute, "entries": total, "failures": failing,
                 "error_rate": round(failing / total, 4) if total else 0.0,
                 "by_code": {label: values[index] for label, values in failure_series.items()
                             if values[index]},
                 **{dimension: _pairs(per_minute[dimension].get(minute, {}))
                    for dimension in dimensions}}
                for index, (minute, total, failing) in enumerate(series)
            ],
            "series": {"minutes": minutes, "entries": [total for _, total, _ in series],
                       "failures": [failing for _, _, failing in series],
                       "by_code": failure_series},
            "malformed": {"count": self.malformed,
                          "lines": [{"source": problem.source, "line": problem.line,
                                     "message": problem.message} for problem in self.problems]},
            "notes": self.notes,
        }

    def add_batch(self, source: str, batch: Batch) -> None:
        self.entries += batch.entries
        self.outside_window += batch.outside_window
        for key, count in batch.counts.items():
            self.counts[key] += count
            if is_failure(key[1], key[2]):
                self.failures += count
        for kind_key, span in batch.kinds.items():
            self._add_kind(source, kind_key, span)
        for top, counter in ((self.failing_paths, batch.paths),
                             (self.failing_callers, batch.callers),
                             (self.failing_upstream_hosts, batch.upstream_hosts)):
            top.add_counts(counter)
        self.malformed += len(batch.problems)
        room = PROBLEMS_KEPT - len(self.problems)
        if room > 0:
            self.problems.extend(batch.problems[:room])

    def add_counts(self, other: LogSummary) -> None:
        """Add the counts by key and the top failing values of `other`, a worker process's totals."""
        self.counts.update(other.counts)
        self.failures += other.failures
        for mine, theirs in ((self.failing_paths, other.failing_paths),
                             (self.failing_callers, other.failing_callers),
                             (self.failing_upstream_hosts, other.failing_upstream_hosts)):
            mine.add_counts(theirs.counts)
            mine.approximate |= theirs.approximate

    def _add_kind(self, source: str, kind_key: tuple, span: KindSpan) -> None:
        first = Occurrence(source, span.first_line, span.first_second)
        last = Occurrence(source, span.last_line, span.last_second)
        kind = self.kinds.get(kind_key)
        if kind is None:
            self.kinds[kind_key] = FailureKind(*kind_key, span.count, first, last)
            return
        kind.count += span.count
        if _earlier(first, kind.first):
            kind.first = first
        if not _earlier(last, kind.last):
            kind.last = last


@dataclass
class _MinuteTables:
    """The grouped counts of a summary by minute, where the minute None counts entries without a start time.

    `values` has, for every one of KEY_FIELDS but "minute", the counts by
    value per minute, and `failures_by_code` the failures by response code
    label and minute.
    """

    entries: dict[str | None, int]
    failures: dict[str | None, int]
    failures_by_code: dict[str, dict[str, int]]
    values: list[dict[str | None, dict]]


def _filled_minutes(present: Iterable[str | None]) -> list[str]:
    """Return every minute from the first to the last of `present`, or only those over a long span."""
    minutes = sorted(minute for minute in present if minute is not None)
    if not minutes:
        return []
    first = datetime.fromisoformat(minutes[0])
    last = datetime.fromisoformat(minutes[-1])
    steps = int((last - first).total_seconds() // 60)
    if steps > MAX_FILLED_MINUTES:
        return minutes
    return [(first + timedelta(minutes=step)).strftime("%Y-%m-%dT%H:%M")
            for step in range(steps + 1)]


def _error_rate(tables: _MinuteTables, minutes: list[str]) -> list[tuple[str, int, int]]:
    return [(minute, tables.entries.get(minute, 0), tables.failures.get(minute, 0))
            for minute in minutes]


def _failure_series(tables: _MinuteTables, minutes: list[str]) -> dict[str, list[int]]:
    return {label: [counts.get(minute, 0) for minute in minutes]
            for label, counts in sorted(tables.failures_by_code.items())}


def _dimension_tables(tables: _MinuteTables) -> tuple[dict[str, dict], dict[str, dict[str, dict]]]:
    """Return the counts by value of every dimension, overall and per minute with a start time."""
    totals: dict[str, dict] = {}
    per_minute: dict[str, dict[str, dict]] = {}
    for dimension, by_minute in zip(KEY_FIELDS[1:], tables.values):
        overall: dict = {}
        for table in by_minute.values():
            for value, count in table.items():
                overall[value] = overall.get(value, 0) + count
        totals[dimension] = overall
        per_minute[dimension] = {minute: table for minute, table in by_minute.items() if minute is not None}
    return totals, per_minute


def _earlier(one: Occurrence, other: Occurrence) -> bool:
    if one.second is None or other.second is None:
        return False
    return one.second < other.second


def _pairs(counter: Mapping[Any, int]) -> list[dict[str, Any]]:
    return [{"value": _jsonable(value), "count": count} for value, count in _ranked(counter)]


def _ranked(counter: Mapping[Any, int]) -> list[tuple[Any, int]]:
    """Return the items by falling count, equal counts by value, so the order does not depend on chunking."""
    return sorted(counter.items(), key=lambda item: (-item[1], str(item[0])))


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return ",".join(value) if value else None
    return value


def _kind_dict(kind: FailureKind) -> dict[str, Any]:
    return {"response_code": kind.response_code,
            "response_flags": ",".join(kind.response_flags) or None,
            "response_code_details": kind.response_code_details,
            "count": kind.count,
            "first": vars(kind.first), "last": vars(kind.last)}


def summarize_entries(entries: Iterable[AccessLogEntry],
                      problems: Iterable[ParseProblem] = ()) -> LogSummary:
    """Summarize entries the tolerant parser already read, such as the facts of a scan.

    Gives the same counts as `analyze_files` on the files they came from, so
    the UI can chart the access logs of a bundle without reading them again.
    """
    summary = LogSummary()
    batches: dict[str, Batch] = {}
    for entry in entries:
        batch = batches.setdefault(entry.source, Batch())
        batch.add_row(row_from_entry(entry), (None, None))
    for problem in problems:
        batches.setdefault(problem.source, Batch()).problems.append(problem)
    for source, batch in batches.items():
        summary.add_batch(source, batch)
    return summary


def analyze_files(paths: Sequence[Path], since: timedelta | None = None,
                  start: datetime | None = None, end: datetime | None = None,
                  processes: bool = False) -> LogSummary:
    """Summarize access-log files; `since` counts back from the newest entry in them.

    A path of "-" reads standard input. A file that cannot be read is reported
    in the summary's notes and files, never skipped silently. Raises
    LogInputError when `since` is given with standard input.

    With `processes`, chunks of plain files are scanned in forked worker
    processes instead of threads. A forked process inherits the locks that
    other threads hold, so threads are used anyway while other threads run.
    The workers keep their counts by key and top failing values until the
    end, and each worker trims its own top values. So past TRACKED_VALUES
    distinct values, the approximate top values can differ from a scan on threads.
    """
    summary = LogSummary()
    if since is not None:
        newest = _newest_second(paths, summary)
        if newest is None:
            summary.notes.append(f"--since {_format_delta(since)}: no entry with a start time "
                                 "in the files, so the whole files are read")
        else:
            start = datetime.fromisoformat(newest).replace(tzinfo=timezone.utc) - since + \
                timedelta(seconds=1)
    window = (second_of(start), second_of(end))
    summary.window_start, summary.window_end = window

    if processes and threading.active_count() > 1:
        logger.debug("other threads run, so chunks are scanned on threads instead of forked processes")
        processes = False
    if processes:
        scanned = copy.deepcopy(summary)  # still without counts: what a retry starts from
        try:
            with ScanWorkers(_WORKERS, _scan_piece_in_worker, LogSummary, _add_kept,
                             initializer=_keep_freed_memory) as workers:
                for index, path in enumerate(paths):
                    _analyze_file(Path(path), window, scanned, workers, last_file=index == len(paths) - 1)
                for totals in workers.finish():
                    scanned.add_counts(totals)
            return scanned
        except WorkerDied as error:
            # A worker died (killed for memory, say): nothing of that scan is kept.
            logger.warning("a log-scanning worker process died (%s); scanning again on threads", error)
            summary.notes.append("a worker process died during the scan, so the files were read "
                                 "again on threads")
    for path in paths:
        _analyze_file(Path(path), window, summary, None)
    return summary


def _keep_freed_memory() -> None:
    """Let glibc's malloc keep freed blocks of any size for reuse in this process.

    Each piece allocates tens of MB of arrays. By default glibc maps large
    blocks fresh from the kernel and unmaps them on free, so every piece pays
    for page faults again. A sequential scan of the benchmark's 1,000,000-line
    TEXT log took about 25 ms a piece that way and about 17 ms with this
    setting (2 CPUs, AMD EPYC). Outside glibc the call is skipped.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        logger.debug("libc.so.6 not found; malloc thresholds left unchanged")
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _KEPT_BLOCK_BYTES)
    libc.mallopt(_M_TRIM_THRESHOLD, _KEPT_BLOCK_BYTES)


def _format_delta(delta: timedelta) -> str:
    return f"{int(delta.total_seconds())}s"


def _analyze_file(path: Path, window: tuple[str | None, str | None], summary: LogSummary,
                  workers: ScanWorkers | None, last_file: bool = False) -> None:
    if str(path) == STDIN:
        _analyze_stdin(window, summary)
        return
    try:
        size = path.stat().st_size
        raw = path.open("rb")
    except OSError as error:
        summary.notes.append(f"{path}: cannot read: {error.strerror}")
        summary.files.append(FileReport(str(path), 0, False, "unreadable",
                                        note=f"cannot read: {error.strerror}"))
        return

    with raw:
        counted = _CountingReader(raw)
        compressed = counted.peek(2) == b"\x1f\x8b"
        report = FileReport(str(path), size, compressed, "full-read")
        start_offset, end_offset = 0, None
        if window != (None, None):
            if compressed:
                report.note = "gzip cannot seek, so the whole file was read"
            elif size <= SMALL_FILE_BYTES:
                pass  # the probes of a binary search would read more than the file itself
            else:
                start_offset, end_offset, report.note = _seek_window(counted, size, window)
                report.method = "binary-search" if report.note is None else "full-read"
        report.start_offset = start_offset
        if report.note:
            summary.notes.append(f"{path}: {report.note}")

        handle: BinaryIO = gzip.GzipFile(fileobj=counted) if compressed else counted
        counted.seek(start_offset)
        source = str(path) if start_offset == 0 else f"{path} (from byte {start_offset})"
        if workers is not None and not compressed:
            pieces = _file_pieces(path, counted, end_offset if end_offset is not None else size)
            _read_stream(pieces, source, window, report, summary, workers, last_file)
        else:
            _read_stream(_stream_pieces(handle, end_offset), source, window, report, summary, None)
        report.bytes_read = counted.bytes_read
    summary.files.append(report)


def _analyze_stdin(window: tuple[str | None, str | None], summary: LogSummary) -> None:
    """Read standard input to its end; it cannot seek, so a window is found by filtering."""
    raw = sys.stdin.buffer
    counted = _CountingReader(raw)
    compressed = raw.peek(2)[:2] == b"\x1f\x8b"
    report = FileReport(STDIN_SOURCE, 0, compressed, "full-read")
    if window != (None, None):
        report.note = "standard input cannot seek, so all of it was read"
        summary.notes.append(f"{STDIN_SOURCE}: {report.note}")
    handle: BinaryIO = gzip.GzipFile(fileobj=counted) if compressed else counted
    _read_stream(_stream_pieces(handle, None), STDIN_SOURCE, window, report, summary, None)
    report.bytes_read = report.size = counted.bytes_read
    summary.files.append(report)


def _read_stream(pieces: Iterator[_Piece], source: str, window: tuple[str | None, str | None],
                 report: FileReport, summary: LogSummary,
                 workers: ScanWorkers | None, last_file: bool = False) -> None:
    try:
        _scan_stream(pieces, source, window, report, summary, workers, last_file)
    except _BinaryFile:
        report.method = "skipped"
        report.note = "binary file (NUL bytes in its first 8 KiB), not an access log"
        summary.notes.append(f"{source}: {report.note}")
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        report.note = f"reading stopped: {error}"
        summary.notes.append(f"{source}: reading stopped after {report.lines} lines: {error}")


class _BinaryFile(Exception):
    """Raised when the file starts with NUL bytes, so it is not a text log."""


class _CountingReader:
    """A binary file that counts the bytes read from it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer) -> int:
        count = self._raw.readinto(buffer)
        self.bytes_read += count or 0
        return count

    def peek(self, size: int) -> bytes:
        position = self._raw.tell()
        data = self._raw.read(size)
        self._raw.seek(position)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    @property
    def closed(self) -> bool:
        return self._raw.closed


@dataclass(frozen=True)
class _Piece:
    """A run of complete lines: its bytes, or the byte range of the file that contains them.

    `final` is True for the last piece when it ends without a newline.
    """

    final: bool
    data: bytes | None = None
    path: str | None = None
    begin: int = 0
    end: int = 0

    def read(self, limit: int | None = None) -> bytes:
        """Return the piece's bytes, or only its first `limit` bytes."""
        size = self.end - self.begin if self.data is None else len(self.data)
        if limit is not None:
            size = min(size, limit)
        if self.data is not None:
            return self.data[:size]
        with open(self.path, "rb") as handle:
            handle.seek(self.begin)
            return handle.read(size)

    def read_padded(self) -> bytearray:
        """Return the bytes followed by `logbytes.padding()`, read without a further copy.

        The bytes land in a buffer this thread reuses from piece to piece, so
        the returned bytearray is valid until the thread reads its next piece.
        """
        tail = logbytes.padding()
        size = len(self.data) if self.data is not None else self.end - self.begin
        buffer = _reading_buffer(size + len(tail))
        if self.data is not None:
            buffer[:size] = self.data
        else:
            with open(self.path, "rb") as handle:
                handle.seek(self.begin)
                if handle.readinto(memoryview(buffer)[:size]) != size:
                    raise EOFError(f"{self.path} is shorter than expected: it changed while it was read")
        buffer[size:] = tail
        return buffer


_reading = threading.local()


def _reading_buffer(size: int) -> bytearray:
    """Return this thread's reading buffer, resized to `size` bytes.

    A fresh bytearray of a piece's size is zero-filled first, which took
    about 0.25 ms of the 0.8 ms a 4 MiB read costs. Resizing the kept one
    only moves its end. A buffer still exported (a numpy or Arrow view of the
    previous piece is alive) cannot be resized, so a new one replaces it.
    """
    buffer = getattr(_reading, "buffer", None)
    if buffer is not None:
        try:
            if len(buffer) > size:
                del buffer[size:]
            else:
                buffer.extend(bytes(size - len(buffer)))
            return buffer
        except BufferError:
            pass
    buffer = _reading.buffer = bytearray(size)
    return buffer


def _stream_pieces(handle: BinaryIO, end_offset: int | None) -> Iterator[_Piece]:
    for data, final in _byte_chunks(handle, end_offset):
        yield _Piece(final, data=data)


def _file_pieces(path: Path, handle: _CountingReader, end_offset: int) -> Iterator[_Piece]:
    """Cut `[handle.tell(), end_offset)` of a plain file into pieces that end at newlines.

    Only the bytes around each cut are read here, and the workers read the
    pieces. The handle counts both.
    """
    begin = handle.tell()
    while begin < end_offset:
        nominal = begin + CHUNK_BYTES
        if nominal >= end_offset:
            cut = _last_newline(handle, begin, end_offset)
        else:
            cut = _last_newline(handle, begin, nominal)
        if cut is None:  # no newline in the nominal piece: take the line whole
            cut = _next_newline(handle, nominal, end_offset)
        if cut is None:
            handle.bytes_read += end_offset - begin
            yield _Piece(True, path=str(path), begin=begin, end=end_offset)
            return
        handle.bytes_read += cut - begin + 1
        yield _Piece(False, path=str(path), begin=begin, end=cut)
        begin = cut + 1


def _last_newline(handle: _CountingReader, begin: int, end: int) -> int | None:
    """Return the offset of the last newline in `[begin, end)`, reading backwards in blocks."""
    stop = end
    while stop > begin:
        start = max(begin, stop - _NEWLINE_PROBE_BYTES)
        handle.seek(start)
        block = handle.read(stop - start)
        found = block.rfind(b"\n")
        if found >= 0:
            return start + found
        stop = start
    return None


def _next_newline(handle: _CountingReader, begin: int, end: int) -> int | None:
    """Return the offset of the first newline in `[begin, end)`."""
    position = begin
    while position < end:
        handle.seek(position)
        block = handle.read(min(_NEWLINE_PROBE_BYTES, end - position))
        found = block.find(b"\n")
        if found >= 0:
            return position + found
        position += len(block)
    return None


def _scan_stream(pieces: Iterator[_Piece], source: str, window: tuple[str | None, str | None],
                 report: FileReport, summary: LogSummary,
                 workers: ScanWorkers | None, last_file: bool = False) -> None:
    """Scan pieces on worker threads or processes and add them in file order.

    numpy and Arrow release the GIL in their loops, so two threads scan two
    pieces at once. Forked processes do not share a GIL at all. Workers number
    lines from 1 within their piece. The lines are renumbered
    when the piece is added, because only then is the number of lines before
    it known. With `last_file`, a worker process with no pieces left
    finishes and hands over its counts while the others still scan.
    """
    scanners = workers if workers is not None else _ScanThreads()
    queue: deque[tuple[_Piece, Any]] = deque()
    try:
        lines_before = 0
        first_piece = True
        carry = ""
        exhausted = False
        while True:
            while not exhausted and len(queue) < _IN_FLIGHT:
                piece = next(pieces, None)
                if piece is None:
                    exhausted = True
                    break
                if first_piece and b"\x00" in piece.read(_BINARY_SNIFF_BYTES):
                    raise _BinaryFile()
                first_piece = False
                queue.append((piece, scanners.submit(source, piece, window)))
            if not queue:
                break

            piece, handle = queue.popleft()
            if carry:
                # The previous piece left lines of an open JSON object: rescan this
                # piece with them in front.
                scanners.discard(handle)
                text = carry + "\n" + _decode(piece.read())
                batch, consumed = scan_text(source, 1, text, piece.final, window)
                total = batch.line_count
            else:
                batch, consumed, total, text = scanners.result(handle)
                scanners.keep(handle)
            carry = ""
            if consumed < total:
                if text is None:
                    text = _decode(piece.read())
                carry = text.split("\n", consumed)[-1]
            _renumber_batch(batch, lines_before)
            lines_before += consumed
            _add(batch, consumed, source, report, summary)
            if exhausted and workers is not None and last_file:
                for totals in workers.finish(busy={worker for _, worker in queue}):
                    summary.add_counts(totals)
        if carry:
            batch, consumed = scan_text(source, 1, carry, True, window)
            _renumber_batch(batch, lines_before)
            _add(batch, consumed, source, report, summary)
    except Exception:
        while queue:  # the scan stops here: settle the pieces still in the workers
            scanners.discard(queue.popleft()[1])
        raise
    finally:
        if workers is None:
            scanners.close()


class _ScanThreads:
    """Threads that scan pieces, used like ScanWorkers: each result contains its piece's whole batch."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(_WORKERS)

    def submit(self, *arguments: Any) -> Future:
        return self._executor.submit(_scan_piece, *arguments)

    def result(self, future: Future) -> tuple:
        return future.result()

    def keep(self, future: Future) -> None:
        """Do nothing: the result's batch has the piece's counts, and the caller adds it."""

    def discard(self, future: Future) -> None:
        future.cancel()

    def close(self) -> None:
        self._executor.shutdown(cancel_futures=True)


def _scan_piece(source: str, piece: _Piece, window: tuple[str | None, str | None]):
    """Scan one piece; return its batch, the lines consumed and in all, and its text when needed."""
    data = piece.read_padded()
    lines = memoryview(data)[:len(data) - len(logbytes.padding())]
    chunk = logbytes.read_chunk(data, padded=True)
    if not chunk.ascii:
        try:
            str(lines, "utf-8")
        except UnicodeDecodeError:
            data = bytearray(_decode(bytes(lines)).encode("utf-8") + logbytes.padding())
            lines = memoryview(data)[:len(data) - len(logbytes.padding())]
            chunk = logbytes.read_chunk(data, padded=True)
    batch, consumed = scan_chunk(source, 1, chunk, piece.final, window)
    total = batch.line_count
    return batch, consumed, total, (_decode(bytes(lines)) if consumed < total else None)


def _scan_piece_in_worker(source: str, piece: _Piece, window: tuple[str | None, str | None]):
    """Scan one piece in a worker process; return the reply without the counts, and the counts.

    The reply contains what the main process renumbers: line counts, failure
    kinds and problems. The counts stay in the worker until the piece is kept.
    """
    batch, consumed, total, text = _scan_piece(source, piece, window)
    counts = Batch(counts=batch.counts, paths=batch.paths, callers=batch.callers,
                   upstream_hosts=batch.upstream_hosts)
    reply = replace(batch, counts={}, paths=Counter(), callers=Counter(), upstream_hosts=Counter())
    return (reply, consumed, total, text), counts


def _add_kept(totals: LogSummary, counts: Batch) -> None:
    totals.add_batch("", counts)  # a batch of counts only: it has no failure kind to name a source


def _renumber_batch(batch: Batch, lines_before: int) -> None:
    if not lines_before:
        return
    for span in batch.kinds.values():
        span.first_line += lines_before
        span.last_line += lines_before
    batch.problems = [ParseProblem(problem.source, (problem.line or 0) + lines_before,
                                   problem.message) for problem in batch.problems]


def _add(batch: Batch, lines: int, source: str, report: FileReport, summary: LogSummary) -> None:
    report.lines += lines
    report.entries += batch.entries
    report.malformed += len(batch.problems)
    summary.add_batch(source, batch)


def _byte_chunks(handle: BinaryIO, end_offset: int | None) -> Iterator[tuple[bytes, bool]]:
    """Yield (complete lines without the last newline, is the last chunk) from `handle`."""
    pending = b""
    remaining = None if end_offset is None else end_offset - handle.tell()
    while True:
        size = CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining)
        data = handle.read(size) if size > 0 else b""
        if remaining is not None:
            remaining -= len(data)
        if not data:
            if pending:
                yield pending, True
            return
        data = pending + data
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
            continue
        pending = data[cut + 1:]
        yield data[:cut], False


def _decode(data: bytes) -> str:
    # NOTE: undecodable bytes are replaced, as the document reader does. The
    # lines containing them are read, but no problem is reported for them.
    return data.decode("utf-8", errors="replace")


def _seek_window(handle: _CountingReader, size: int,
                 window: tuple[str | None, str | None]) -> tuple[int, int | None, str | None]:
    """Find the byte range of the window by binary search on the start times of lines.

    Returns (start offset, end offset or None, None) or, when the file is not
    in time order or has no start times to search on, (0, None, the reason).
    """
    probes: list[tuple[int, str]] = []
    first = _probe(handle, 0, size)
    if first is None:
        return 0, None, "no start time near the beginning of the file, so the whole file was read"
    probes.append(first)
    last = _probe(handle, max(0, size - _PROBE_BYTES), size)
    if last is not None:
        probes.append(last)

    start, end = window
    start_offset = 0
    if start is not None:
        start_offset, _ = _search(handle, size, _shifted(start, -SEEK_SLACK), probes)
    end_offset = None
    if end is not None:
        _, end_offset = _search(handle, size, _shifted(end, SEEK_SLACK), probes)
        if end_offset >= size:
            end_offset = None

    probes.sort()
    slack = SEEK_SLACK.total_seconds()
    for (_, earlier), (_, later) in zip(probes, probes[1:]):
        if _seconds_between(earlier, later) < -slack:
            return 0, None, (f"start times are not in order ({later} after {earlier}), "
                             "so the whole file was read")
    return start_offset, end_offset, None


def _search(handle: _CountingReader, size: int, target: str,
            probes: list[tuple[int, str]]) -> tuple[int, int]:
    """Bracket the first line whose start time is at or after `target`.

    Returns two line-start offsets: the last probed line before `target` (or
    0) and the first probed line at or after it (or the file size).
    """
    low, high = 0, size
    high_line = size
    while high - low > _SEEK_GRANULARITY:
        middle = (low + high) // 2
        probe = _probe(handle, middle, size)
        if probe is None:
            high = middle
            continue
        probes.append(probe)
        offset, second = probe
        if second < target:
            low = offset
        else:
            high = middle
            high_line = offset
    return low, high_line


def _probe(handle: _CountingReader, offset: int, size: int) -> tuple[int, str] | None:
    """Return the offset and start time of the first entry starting at or after `offset`."""
    handle.seek(offset)
    data = handle.read(_PROBE_BYTES)
    position = 0
    if offset > 0:
        newline = data.find(b"\n")
        if newline < 0:
            return None
        position = newline + 1
    while position < len(data):
        newline = data.find(b"\n", position)
        if newline < 0:
            return None
        line = data[position:newline].decode("utf-8", errors="replace")
        second = _line_second(line)
        if second is not None:
            return offset + position, second
        position = newline + 1
    return None


def _line_second(line: str) -> str | None:
    match = _TEXT_TIME.search(line) or _JSON_TIME.search(line)
    if match is None:
        return None
    return second_of(accesslog.parse_timestamp(match.group(1)))


def _shifted(second: str, delta: timedelta) -> str:
    return (datetime.fromisoformat(second) + delta).strftime("%Y-%m-%dT%H:%M:%S")


def _seconds_between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


def _newest_second(paths: Iterable[Path], summary: LogSummary) -> str | None:
    """Return the newest start time at the end of the files (gzip files are read whole)."""
    newest: str | None = None
    for path in paths:
        if str(path) == STDIN:
            raise LogInputError("--since counts back from the newest entry, which standard "
                                "input shows only at its end; give --from TIME instead")
        try:
            with Path(path).open("rb") as raw:
                compressed = raw.read(2) == b"\x1f\x8b"
                raw.seek(0)
                tail = _gzip_tail(raw) if compressed else _plain_tail(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            summary.notes.append(f"{path}: cannot read its end: {error}")
            continue
        for line in reversed(tail.decode("utf-8", errors="replace").splitlines()):
            second = _line_second(line)
            if second is not None:
                newest = second if newest is None or second > newest else newest
                break
    return newest


def _plain_tail(raw: BinaryIO) -> bytes:
    size = raw.seek(0, 2)
    raw.seek(max(0, size - _PROBE_BYTES))
    return raw.read()


def _gzip_tail(raw: BinaryIO) -> bytes:
    tail = b""
    with gzip.GzipFile(fileobj=raw) as stream:
        while True:
            data = stream.read(CHUNK_BYTES)
            if not data:
                return tail
            tail = (tail + data)[-_PROBE_BYTES:]
