"""Fast scanning of Envoy access-log text into grouped counts and failure counts.

A chunk of complete lines is split into an Arrow array. RE2 (through
pyarrow.compute) checks every line against three strict patterns: Istio's
TEXT format, Envoy's default format, and the compact, key-sorted JSON object
that Envoy's typed `json_format` writes for Istio's JSON format. A line that
fits one of them has exactly one reading, the same one that the tolerant
parser in `doctor.parsers.accesslog` gives it, so its fields are cut out
column-wise and counted with Arrow group-bys. Every other line (JSON in
another key order or pretty-printed, escapes, prefixes, malformed lines)
goes through the tolerant parser itself. The strict patterns accept a subset
of what the tolerant parser accepts. Unquoted fields exclude the quote and
every character that Python's `\\s` matches. Quoted fields exclude the quote
and every character that `str.splitlines` breaks on. JSON strings exclude
backslashes and control characters.

NOTE: lines are split at `\\n` only, as Envoy writes them, but
`accesslog.parse` splits a document at every `str.splitlines` boundary
(`\\x0b`, `\\x0c`, `\\x1c` to `\\x1e`, `\\x85`, U+2028, U+2029 too). A line
containing one of those is read whole here and in two parts there.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from doctor import logbytes
from doctor.model import ParseProblem
from doctor.parsers import accesslog
from doctor.parsers.accesslog import AccessLogEntry

logger = logging.getLogger(__name__)

# Characters Python's `\s` matches in a str pattern, and those `str.splitlines` breaks on.
_WHITESPACE = (r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}"
               r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}")
_LINE_BREAKS = r"\n\r\x0b\x0c\x1c-\x1e\x85\x{2028}\x{2029}"
_TOKEN = f'[^{_WHITESPACE}"]+'
_QUOTED = f'"[^{_LINE_BREAKS}"]*"'
_QUOTED_TOKEN = f'"[^{_WHITESPACE}"]*"'
_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](?:\.[0-9]{1,9})?Z"

# Istio's TEXT format (before and since 1.24), field by field. The authority and
# the upstream host have no spaces here, so on a line that fits, splitting at
# spaces from either end finds every field the summary needs.
TEXT_PATTERN = (
    rf'^\[{_TIME}\] "{_TOKEN} {_TOKEN} {_TOKEN}" [0-9]+ {_TOKEN} {_TOKEN} {_TOKEN} {_QUOTED} '
    rf"{_TOKEN} {_TOKEN} {_TOKEN} {_TOKEN} {_QUOTED} {_QUOTED} {_QUOTED} {_QUOTED_TOKEN} "
    rf"{_QUOTED_TOKEN} {_TOKEN} {_TOKEN} {_TOKEN} {_TOKEN} {_TOKEN} {_TOKEN}$"
)

# Envoy's default format (no Istio fields), field by field.
ENVOY_PATTERN = (
    rf'^\[{_TIME}\] "{_TOKEN} {_TOKEN} {_TOKEN}" [0-9]+ {_TOKEN} {_TOKEN} {_TOKEN} {_TOKEN} '
    rf"{_TOKEN} {_QUOTED} {_QUOTED} {_QUOTED} {_QUOTED_TOKEN} {_QUOTED_TOKEN}$"
)

_JSON_STRING = r'"[^"\\\x00-\x1f]*"'
_JSON_VALUE = rf"(?:{_JSON_STRING}|-?(?:0|[1-9][0-9]*)|null)"
# The keys of Istio's JSON format in the sorted order Envoy's `json_format` writes them.
_JSON_KEYS = logbytes.JSON_KEYS
JSON_PATTERN = "^\\{" + ",".join(
    f'"{key}":"{_TIME}"' if key == "start_time" else f'"{key}":{_JSON_VALUE}'
    for key in _JSON_KEYS) + "\\}$"
_JSON_BODY = (
    rf'"downstream_remote_address":(?P<remote>{_JSON_VALUE}),"duration":{_JSON_VALUE},'
    rf'"method":{_JSON_VALUE},"path":(?P<path>{_JSON_VALUE}),'
)

_END = 1 << 30  # a slice stop past the end of any line
_SECOND_WIDTH = len("2026-01-01T00:00:00")
_MINUTE_WIDTH = len("2026-01-01T00:00")
_KEY_LIMIT = 1 << 62  # combined group keys stay below this, so they fit in int64
_DENSE_KEYS = 1 << 20  # up to this many possible keys, rows are grouped by counting, not sorting

# Columns of a group key, in order.
KEY_FIELDS = ("minute", "response_code", "response_flags", "response_code_details",
              "upstream_cluster", "route_name", "authority")
_KEY_COLUMNS = ("minute", "code", "flags", "details", "cluster", "route", "authority")

# A pretty-printed JSON object longer than this is not read as one entry (as in the parser).
MAX_BLOCK_LINES = 400


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


def scan_text(source: str, first_line: int, text: str, final: bool,
              window: tuple[str | None, str | None] = (None, None)) -> tuple[Batch, int]:
    """Scan `text` (lines separated by `\\n`); return the batch and how many lines were consumed.

    Lines at the end that may start a pretty-printed JSON object still open
    are not consumed unless `final` is True, so the caller passes them again
    with the next chunk. `first_line` is the 1-based number of the first line.
    """
    return scan_bytes(source, first_line, text.encode("utf-8"), final, window)


def scan_bytes(source: str, first_line: int, data: bytes | bytearray, final: bool,
               window: tuple[str | None, str | None] = (None, None),
               padded: bool = False) -> tuple[Batch, int]:
    """Scan `data`, valid UTF-8 lines separated by `\\n`, like `scan_text`.

    With `padded`, `data` ends with `logbytes.padding()` after its last line.
    """
    return scan_chunk(source, first_line, logbytes.read_chunk(data, padded), final, window)


def scan_chunk(source: str, first_line: int, chunk: logbytes.Chunk, final: bool,
               window: tuple[str | None, str | None] = (None, None)) -> tuple[Batch, int]:
    """Scan a chunk that `logbytes.read_chunk` read from valid UTF-8 lines, like `scan_bytes`."""
    count = len(chunk)
    batch = Batch(line_count=count)
    found = _classify_chunk(chunk)
    fast = found.masks["text"] | found.masks["json"] | found.masks["envoy"]
    slow_indices = np.flatnonzero(~fast).tolist()

    consumed = count
    if slow_indices:
        consumed, absorbed = _scan_slow(source, first_line, _Lines(chunk), count, slow_indices,
                                        final, window, batch)
        if consumed < count or absorbed:
            # Lines left for the next chunk, or read as part of a pretty-printed
            # object, are not counted again on their own.
            keep = np.arange(count) < consumed
            for start, end in absorbed:
                keep[start:end] = False
            found = found.keep(keep)

    for rows, fields, layout in ((found.text_rows, found.text_fields, _TEXT_LAYOUT),
                                 (found.json_rows, found.json_fields, _JSON_LAYOUT)):
        if len(rows):
            _count_fields(chunk, rows, fields, layout, first_line, window, batch)
    for name, rows in (("json", found.arrow_json_rows), ("envoy", np.flatnonzero(found.masks["envoy"]))):
        if len(rows):
            columns_of, value_of = _READERS[name]
            _count_fast(logbytes.lines(chunk, rows), pa.array(rows + first_line, pa.int64()),
                        columns_of, value_of, window, batch)
    return batch, consumed


@dataclass(frozen=True)
class _Classified:
    """The strict format of each line of a chunk, and the fields of the lines read from offsets.

    `masks` marks, per format, every line that fits it. TEXT and JSON lines
    read from offsets have their rows and fields here; the JSON lines that
    only RE2 accepted are `arrow_json_rows`, read with Arrow.
    """

    masks: dict[str, np.ndarray]
    text_rows: np.ndarray
    text_fields: logbytes.LineFields
    json_rows: np.ndarray
    json_fields: logbytes.LineFields
    arrow_json_rows: np.ndarray

    def keep(self, keep: np.ndarray) -> _Classified:
        """Return the classification of the lines where `keep` is True."""
        text_kept = keep[self.text_rows]
        json_kept = keep[self.json_rows]
        return _Classified(
            masks={name: mask & keep for name, mask in self.masks.items()},
            text_rows=self.text_rows[text_kept],
            text_fields=self.text_fields.select(text_kept),
            json_rows=self.json_rows[json_kept],
            json_fields=self.json_fields.select(json_kept),
            arrow_json_rows=self.arrow_json_rows[keep[self.arrow_json_rows]],
        )


def _classify_chunk(chunk: logbytes.Chunk) -> _Classified:
    """Find the strict format of each line of the chunk.

    The structural checks of `logbytes` take most TEXT and compact JSON
    lines. RE2 checks only the lines they leave against the three strict patterns.
    """
    text_rows, text_fields = logbytes.text_lines(chunk)
    masks = {name: np.zeros(len(chunk), bool) for name in _PATTERNS}
    masks["text"][text_rows] = True
    json_rows, json_fields = logbytes.json_lines(chunk, masks["text"])
    masks["json"][json_rows] = True
    arrow_json_rows = np.zeros(0, np.int64)
    rest = np.flatnonzero(~(masks["text"] | masks["json"]))
    if len(rest):
        matched = {name: rest[mask.to_numpy(zero_copy_only=False)]
                   for name, mask in _classify(logbytes.lines(chunk, rest)).items()}
        for name, rows in matched.items():
            masks[name][rows] = True
        arrow_json_rows = matched["json"]
        if len(matched["text"]):
            rows = np.concatenate((text_rows, matched["text"]))
            order = np.argsort(rows, kind="stable")
            text_fields = text_fields.join(logbytes.text_fields(chunk, matched["text"]), order)
            text_rows = rows[order]
    return _Classified(masks, text_rows, text_fields, json_rows, json_fields, arrow_json_rows)


def _classify(array: pa.Array) -> dict[str, pa.Array]:
    """Return, per strict format, which lines fit it.

    The format that fits the first line is tried first, and the others only on
    the lines no earlier format took, because a log file rarely mixes formats.
    """
    first = array[0].as_py() or ""
    leading = "json" if first.startswith("{") else "text"
    order = sorted(_PATTERNS, key=lambda name: name != leading)
    none = pa.array([False] * len(array), pa.bool_())
    masks: dict[str, pa.Array] = {}
    remaining: pa.Array | None = None
    for name in order:
        if remaining is not None and not pc.any(remaining).as_py():
            masks[name] = none
            continue
        matched = pc.match_substring_regex(array, _PATTERNS[name])
        if remaining is not None:
            matched = pc.and_(matched, remaining)
            remaining = pc.and_(remaining, pc.invert(matched))
        else:
            remaining = pc.invert(matched)
        masks[name] = matched
    return masks


class _Lines:
    """Index access to single lines of a chunk, for the few lines the tolerant parser reads."""

    def __init__(self, chunk: logbytes.Chunk) -> None:
        self._chunk = chunk

    def __len__(self) -> int:
        return len(self._chunk)

    def __getitem__(self, index: int) -> str:
        return self._chunk.line(index)


def _envoy_columns(rows: pa.Array) -> tuple[dict[str, pa.Array], Callable]:
    """Cut the key columns out of lines in Envoy's default format, like `_text_columns`."""
    # `[time] "METHOD PATH PROTOCOL" CODE FLAGS RECEIVED rest...`
    head = pc.split_pattern(rows, " ", max_splits=7)
    # `...rest "AUTHORITY" "HOST"`
    tail = pc.split_pattern(rows, " ", max_splits=2, reverse=True)
    absent = pa.nulls(len(rows), rows.type)
    columns = {
        "second": pc.utf8_slice_codeunits(rows, 1, 20),
        "code": pc.list_element(head, 4), "flags": pc.list_element(head, 5),
        "details": absent,
        "authority": pc.utf8_slice_codeunits(pc.list_element(tail, 1), 1, -1),
        "cluster": absent, "route": absent,
    }

    def details(indices: pa.Array) -> dict[str, pa.Array]:
        return {"path": pc.list_element(pc.take(head, indices), 2),
                "host": pc.utf8_slice_codeunits(pc.list_element(pc.take(tail, indices), 2), 1, -1),
                "remote": pa.nulls(len(indices), rows.type)}

    return columns, details


def _json_columns(rows: pa.Array) -> tuple[dict[str, pa.Array], Callable]:
    """Cut the key columns out of JSON lines, like `_text_columns`.

    On a line that fits JSON_PATTERN no string contains a quote, so `,"`
    occurs only before a key, and the keys come in a known order.
    """
    first = pc.split_pattern(rows, ',"', max_splits=1)
    suffix = pc.list_element(pc.split_pattern(rows, ',"response_code":', max_splits=1), 1)
    # `CODE` `response_code_details":V` `response_flags":V` `route_name":V`
    # `start_time":"TIME"` `upstream_cluster":V` `upstream_host":V` `rest...`
    parts = pc.split_pattern(suffix, ',"', max_splits=7)

    def value(index: int, key: str) -> pa.Array:
        return pc.utf8_slice_codeunits(pc.list_element(parts, index), len(key) + 2, _END)

    columns = {
        "authority": pc.utf8_slice_codeunits(pc.list_element(first, 0), len('{"authority":'), _END),
        "code": pc.list_element(parts, 0),
        "details": value(1, "response_code_details"),
        "flags": value(2, "response_flags"),
        "route": value(3, "route_name"),
        "second": pc.utf8_slice_codeunits(value(4, "start_time"), 1, 20),
        "cluster": value(5, "upstream_cluster"),
    }
    host = value(6, "upstream_host")

    def details(indices: pa.Array) -> dict[str, pa.Array]:
        body = pc.extract_regex(pc.take(rows, indices), _JSON_BODY)
        return {"path": body.field("path"), "host": pc.take(host, indices),
                "remote": body.field("remote")}

    return columns, details


def _count_fast(rows: pa.Array, numbers: pa.Array, columns_of, value_of,
                window: tuple[str | None, str | None], batch: Batch) -> None:
    """Count JSON or Envoy-format lines with Arrow group-bys; `numbers` are their line numbers."""
    columns, details_of = columns_of(rows)

    selected = None  # indices into `rows` of the rows inside the window, None for all
    if window != (None, None):
        seconds = pc.fill_null(columns["second"], "").to_numpy(zero_copy_only=False)
        inside = pa.array(_window_rows(seconds.astype(f"S{_SECOND_WIDTH}"), window))
        batch.outside_window += len(rows) - pc.sum(inside).as_py()
        selected = pc.indices_nonzero(inside)
        numbers = pc.filter(numbers, inside)
        columns = {name: pc.filter(column, inside) for name, column in columns.items()}
    columns["minute"] = pc.utf8_slice_codeunits(columns["second"], 0, 16)

    table = pa.table({name: columns[name] for name in _KEY_COLUMNS})
    grouped = table.group_by(list(_KEY_COLUMNS)).aggregate([([], "count_all")])
    keys = [grouped.column(name).to_pylist() for name in _KEY_COLUMNS]
    totals = grouped.column("count_all").to_pylist()
    for index, total in enumerate(totals):
        key = _normal_key(tuple(column[index] for column in keys), value_of)
        batch.entries += total
        batch.counts[key] = batch.counts.get(key, 0) + total

    failing = _failing_mask(columns["code"], columns["flags"], value_of)
    if failing is None:
        return
    picked = {name: pc.filter(columns[name], failing)
              for name in ("code", "flags", "details", "second")}
    picked["line"] = pc.filter(numbers, failing)
    _count_kinds(pa.table(picked), value_of, batch)

    positions = pc.indices_nonzero(failing)
    if selected is not None:
        positions = pc.take(selected, positions)
    _count_details(details_of(positions), value_of, batch)


def _count_details(details: dict[str, pa.Array], value_of, batch: Batch) -> None:
    """Count the paths, callers and upstream hosts of failing entries."""
    _count_values(details["path"], value_of, batch.paths)
    _count_values(details["remote"], lambda value: caller_of(value_of(value)), batch.callers)
    _count_values(details["host"], value_of, batch.upstream_hosts)


@dataclass(frozen=True)
class _FieldLayout:
    """The conversion of the fields of TEXT or JSON lines, read from offsets, to the parser's values.

    `value_of` turns a field's text into the parser's string value, and
    `split_outcome` cuts the outcome field into code, flags and details.
    `quoted_strings` is True when a field that is a string keeps its quotes.
    """

    value_of: Callable[[str | None], str | None]
    split_outcome: Callable[[str], tuple[str, str, str]]
    quoted_strings: bool


def _split_text_outcome(outcome: str) -> tuple[str, str, str]:
    code, flags, details = outcome.split(" ")
    return code, flags, details


def _split_json_outcome(outcome: str) -> tuple[str, str, str]:
    """Cut `CODE,"response_code_details":DETAILS,"response_flags":FLAGS` into its values.

    The strings of a line read from offsets contain no quote, so the key
    names occur only as keys.
    """
    code, rest = outcome.split(',"response_code_details":', 1)
    details, flags = rest.split(',"response_flags":', 1)
    return code, flags, details


def _count_fields(chunk: logbytes.Chunk, rows: np.ndarray, fields: logbytes.LineFields,
                  layout: _FieldLayout, first_line: int, window: tuple[str | None, str | None],
                  batch: Batch) -> None:
    """Count the lines `rows` of a chunk from the byte ranges of their fields.

    Each key field is dictionary-encoded once, and the codes of a line are
    combined into one integer key, so the group-by works on integers. Python
    converts each distinct value to the parser's value once. The outcome alone
    decides the failure kind, so no Python loop runs per line.
    """
    if window != (None, None):
        inside = _window_rows(logbytes.fixed(chunk, fields.start + 1, _SECOND_WIDTH), window)
        batch.outside_window += len(rows) - int(np.count_nonzero(inside))
        rows = rows[inside]
        fields = fields.select(inside)
        if not len(rows):
            return

    minutes, minute_codes = _minute_runs(chunk, fields)
    outcomes, outcome_codes = _encode(chunk, fields.outcome)
    kinds = [_outcome_kind(outcome, layout) for outcome in outcomes]
    parts = [([None if valid_second(minute + ":00") is None else minute for minute in minutes],
              minute_codes), (kinds, outcome_codes)]
    clusters, cluster_codes = _encode(chunk, fields.upstream_cluster)
    parts.append(([accesslog.strip_cluster_suffix(layout.value_of(cluster)) for cluster in clusters],
                  cluster_codes))
    for name in ("route", "authority"):
        values, codes = _encode(chunk, getattr(fields, name))
        parts.append(([layout.value_of(value) for value in values], codes))
    first_rows, totals = _group_rows(parts, len(rows))
    columns = [[values[code] for code in codes[first_rows].tolist()] for values, codes in parts]
    counts = batch.counts
    for minute, kind, cluster, route, authority, total in zip(*columns, totals.tolist()):
        key = (minute, *kind, cluster, route, authority)
        counts[key] = counts.get(key, 0) + total
    batch.entries += len(rows)

    failing_kinds = np.array([is_failure(code, flags) for code, flags, _ in kinds], bool)
    failing = np.flatnonzero(failing_kinds[outcome_codes])
    if not len(failing):
        return
    kind_of_row = outcome_codes[failing]
    present, first, counts_of_kind = np.unique(kind_of_row, return_index=True, return_counts=True)
    last = len(kind_of_row) - 1 - np.unique(kind_of_row[::-1], return_index=True)[1]
    for kind, first_index, last_index, count in zip(present.tolist(), failing[first].tolist(),
                                                    failing[last].tolist(), counts_of_kind.tolist()):
        batch.add_kind(kinds[kind], KindSpan(
            count, int(rows[first_index]) + first_line, _start_second(chunk, fields, first_index),
            int(rows[last_index]) + first_line, _start_second(chunk, fields, last_index)))

    picked = fields.select(failing)
    for values, counter in ((picked.path, batch.paths), (picked.upstream_host, batch.upstream_hosts)):
        _count_values(logbytes.views(chunk, *values), layout.value_of, counter)
    # Callers are counted by host. Where an address is plain text with a port
    # of plain digits, the port is cut off here. `caller_of` takes the rest.
    remote_start, remote_end = picked.downstream_remote
    if layout.quoted_strings:
        # Only a string value is the address itself, once its quotes are dropped.
        is_string = chunk.buffer[remote_start] == logbytes.QUOTE
        text_start = np.where(is_string, remote_start + 1, remote_start)
        text_end = np.where(is_string, remote_end - 1, remote_end)
    else:
        is_string = np.ones(len(remote_start), bool)
        text_start, text_end = remote_start, remote_end
    host_end, stripped = logbytes.strip_ports(chunk, text_start, text_end)
    stripped &= is_string
    _count_values(logbytes.views(chunk, text_start[stripped], host_end[stripped]), None,
                  batch.callers)
    _count_values(logbytes.views(chunk, remote_start[~stripped], remote_end[~stripped]),
                  lambda value: caller_of(layout.value_of(value)), batch.callers)


def _encode(chunk: logbytes.Chunk, field: tuple[np.ndarray, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Dictionary-encode a field; return its distinct values and each line's code."""
    encoded = pc.dictionary_encode(logbytes.views(chunk, *field))
    return (encoded.dictionary.to_pylist(),
            encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64))


def _outcome_kind(outcome: str, layout: _FieldLayout) -> tuple[int | None, tuple[str, ...], str | None]:
    """Return the parser's (response code, flags, details) of an outcome field."""
    code, flags, details = layout.split_outcome(outcome)
    return (accesslog.parse_int(layout.value_of(code)), accesslog.parse_flags(layout.value_of(flags)),
            layout.value_of(details))


def _count_values(values: pa.Array, convert, counter: Counter) -> None:
    """Add the distinct values (through `convert`, when given) and their counts to `counter`."""
    counted = pc.value_counts(values)
    names = counted.field("values").to_pylist()
    get = counter.get
    for name, count in zip(map(convert, names) if convert else names,
                           counted.field("counts").to_pylist()):
        if name is not None:
            counter[name] = get(name, 0) + count


def _minute_runs(chunk: logbytes.Chunk, fields: logbytes.LineFields) -> tuple[list[str], np.ndarray]:
    """Code the minute of each line by runs of equal minutes; return the run minutes and codes.

    Lines come in time order, so runs are long. The same minute in two runs
    gets two codes, and the counts of both runs meet again under one key.
    """
    high, low = fields.minute
    changed = np.ones(len(high), bool)
    changed[1:] = (high[1:] != high[:-1]) | (low[1:] != low[:-1])
    values = [chunk.data[first + 1:first + 1 + _MINUTE_WIDTH].decode("ascii")
              for first in fields.start[changed].tolist()]
    return values, np.cumsum(changed, dtype=np.int64) - 1


def _group_rows(parts: list[tuple[list, np.ndarray]], count: int) -> tuple[np.ndarray, np.ndarray]:
    """Group rows by their codes in every part; return each group's first row and size."""
    combined = np.zeros(count, np.int64)
    size = 1
    for values, codes in parts:
        if size > _KEY_LIMIT // max(len(values), 1):
            combined = np.unique(combined, return_inverse=True)[1].astype(np.int64).ravel()
            size = int(combined.max(initial=0)) + 1
        combined = combined * len(values) + codes
        size *= max(len(values), 1)

    if size > _DENSE_KEYS:
        _, first, totals = np.unique(combined, return_index=True, return_counts=True)
        return first, totals
    totals = np.bincount(combined, minlength=size)
    present = np.flatnonzero(totals)
    first = np.full(size, count, np.int64)
    np.minimum.at(first, combined, np.arange(count))
    return first[present], totals[present]


def _start_second(chunk: logbytes.Chunk, fields: logbytes.LineFields, index: int) -> str | None:
    start = int(fields.start[index]) + 1
    return _minute_checked(chunk.data[start:start + _SECOND_WIDTH].decode("ascii"))


def _window_rows(seconds: np.ndarray, window: tuple[str | None, str | None]) -> np.ndarray:
    """Select the start seconds (numpy bytes, empty when missing) inside the window.

    A second is inside only when its minute names a real time.
    """
    start, end = window
    inside = seconds != b""
    if start is not None:
        inside &= seconds >= start.encode("ascii")
    if end is not None:
        inside &= seconds < end.encode("ascii")
    minutes = seconds.astype(f"S{_MINUTE_WIDTH}")
    for minute in np.unique(minutes[inside]).tolist():
        if valid_second(minute.decode("ascii") + ":00") is None:
            inside &= minutes != minute
    return inside


def _failing_mask(code: pa.Array, flags: pa.Array, value_of) -> pa.Array | None:
    """Select the failing rows; the decision is made once per distinct (code, flags)."""
    pair = pc.binary_join_element_wise(code, flags, pa.scalar("\x1f", code.type))
    failing = []
    for value in pc.unique(pair).to_pylist():
        raw_code, raw_flags = value.split("\x1f", 1)
        if is_failure(accesslog.parse_int(value_of(raw_code)), accesslog.parse_flags(value_of(raw_flags))):
            failing.append(value)
    if not failing:
        return None
    return pc.is_in(pair, pa.array(failing, pair.type))


def _count_kinds(table: pa.Table, value_of, batch: Batch) -> None:
    grouped = table.group_by(["code", "flags", "details"], use_threads=False).aggregate([
        ([], "count_all"), ("line", "min"), ("line", "max"),
        ("second", "first"), ("second", "last")])
    columns = {name: grouped.column(name).to_pylist() for name in grouped.column_names}
    for index, count in enumerate(columns["count_all"]):
        kind = (accesslog.parse_int(value_of(columns["code"][index])),
                accesslog.parse_flags(value_of(columns["flags"][index])),
                value_of(columns["details"][index]))
        batch.add_kind(kind, KindSpan(
            count, columns["line_min"][index], _minute_checked(columns["second_first"][index]),
            columns["line_max"][index], _minute_checked(columns["second_last"][index])))


def _row(source: str, line: int, raw: dict[str, str | None], value_of) -> Row:
    code = value_of(raw["code"])
    return Row(
        source=source,
        line=line,
        second=_minute_checked(raw["second"]),
        response_code=accesslog.parse_int(code),
        response_flags=accesslog.parse_flags(value_of(raw["flags"])),
        response_code_details=value_of(raw["details"]),
        upstream_cluster=accesslog.strip_cluster_suffix(value_of(raw["cluster"])),
        route_name=value_of(raw["route"]),
        authority=value_of(raw["authority"]),
        path=value_of(raw["path"]),
        downstream_remote_address=value_of(raw["remote"]),
        upstream_host=value_of(raw["host"]),
    )


@lru_cache(maxsize=4096)
def _normal_key(raw: Sequence[str | None], value_of) -> tuple:
    minute, code, flags, details, cluster, route, authority = raw
    valid = None if minute is None else valid_second(minute + ":00")
    return (
        None if valid is None else minute,
        accesslog.parse_int(value_of(code)),
        accesslog.parse_flags(value_of(flags)),
        value_of(details),
        accesslog.strip_cluster_suffix(value_of(cluster)),
        value_of(route),
        value_of(authority),
    )


def _minute_checked(second: str | None) -> str | None:
    return None if second is None else valid_second(second)


@lru_cache(maxsize=65536)
def _json_value(token: str | None) -> str | None:
    """Return the parser's string value of a JSON token the strict pattern accepted."""
    if token is None or token == "null":
        return None
    if token.startswith('"'):
        return accesslog.none_if_dash(token[1:-1])
    return str(int(token))


_PATTERNS = {"text": TEXT_PATTERN, "json": JSON_PATTERN, "envoy": ENVOY_PATTERN}
_TEXT_LAYOUT = _FieldLayout(accesslog.none_if_dash, _split_text_outcome, quoted_strings=False)
_JSON_LAYOUT = _FieldLayout(_json_value, _split_json_outcome, quoted_strings=True)
# Per strict format: the column cutter and the conversion of a raw token to
# the parser's string value (TEXT formats log an absent value as `-`).
_READERS = {
    "json": (_json_columns, _json_value),
    "envoy": (_envoy_columns, accesslog.none_if_dash),
}


def _scan_slow(source: str, first_line: int, lines: Sequence[str], count: int,
               indices: list[int], final: bool, window: tuple[str | None, str | None],
               batch: Batch) -> tuple[int, list[tuple[int, int]]]:
    """Read the lines the strict patterns rejected with the tolerant parser.

    Mirrors `accesslog.parse`: a line starting with `{` may open a
    pretty-printed object that takes the following lines. Returns the index of
    the first line left for the next chunk, and the index ranges of the lines
    that pretty-printed objects took after their first line.
    """
    absorbed: list[tuple[int, int]] = []
    stop = count if final else max(0, count - MAX_BLOCK_LINES)
    pending = iter(indices)
    index = next(pending, None)
    while index is not None:
        line = lines[index]
        stripped = line.strip()
        if not final and index >= stop and stripped.startswith("{"):
            return index, absorbed
        number = first_line + index
        if not stripped:
            index = next(pending, None)
            continue

        if stripped.startswith("{"):
            consumed, item = accesslog.read_json_object(source, _Window(lines, count), index)
            item = _renumber(item, first_line)
            if isinstance(item, AccessLogEntry):
                batch.add_row(row_from_entry(item), window)
            else:
                batch.problems.append(item)
                for offset in range(1, consumed):
                    if lines[index + offset].strip():
                        batch.problems.append(ParseProblem(
                            source, number + offset,
                            f"part of the JSON object that starts on line {number}"))
            following = index + consumed
            if consumed > 1:
                absorbed.append((index + 1, following))
            index = next(pending, None)
            while index is not None and index < following:
                index = next(pending, None)
            continue

        entry = accesslog.parse_text_line(source, number, line.rstrip("\r\n"))
        if entry is not None:
            batch.add_row(row_from_entry(entry), window)
        else:
            batch.problems.append(ParseProblem(source, number, accesslog.describe_text_problem(stripped)))
        index = next(pending, None)
    return count, absorbed


class _Window:
    """A read-only list view of the first `count` lines, as `read_json_object` expects."""

    def __init__(self, lines: Sequence[str], count: int) -> None:
        self._lines = lines
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> str:
        return self._lines[index]


def _renumber(item: AccessLogEntry | ParseProblem, first_line: int) -> AccessLogEntry | ParseProblem:
    """Turn the 1-based index within the chunk into the line number in the file."""
    offset = first_line - 1
    if isinstance(item, ParseProblem):
        return ParseProblem(item.source, (item.line or 0) + offset, item.message)
    end = None if item.end_line is None else item.end_line + offset
    return replace(item, line=item.line + offset, end_line=end)


def iter_rows(batch_lines: Sequence[str], source: str = "<lines>") -> Iterator[Row | None]:
    """Yield the row the fast path reads from each line, or None when it leaves the line to the parser.

    Used to compare the fast path with the tolerant parser line by line.
    """
    for index, line in enumerate(batch_lines):
        chunk = logbytes.read_chunk(line.encode("utf-8"))
        found = _classify_chunk(chunk)
        if len(found.text_rows):
            yield _fields_row(chunk, found.text_fields, _TEXT_LAYOUT, source, index + 1)
            continue
        if len(found.json_rows):
            yield _fields_row(chunk, found.json_fields, _JSON_LAYOUT, source, index + 1)
            continue
        fitting = [name for name in ("json", "envoy") if found.masks[name][0]]
        if not fitting:
            yield None
            continue
        columns_of, value_of = _READERS[fitting[0]]
        columns, details_of = columns_of(pa.array([line], pa.large_string()))
        columns.update(details_of(pa.array([0], pa.int64())))
        raw = {name: column[0].as_py() for name, column in columns.items()}
        yield _row(source, index + 1, raw, value_of)


def _fields_row(chunk: logbytes.Chunk, fields: logbytes.LineFields, layout: _FieldLayout,
                source: str, number: int) -> Row:
    """Read the first line of a chunk from its fields' byte ranges."""

    def text(name: str) -> str:
        start, end = getattr(fields, name)
        return chunk.data[int(start[0]):int(end[0])].decode("utf-8")

    code, flags, details = layout.split_outcome(text("outcome"))
    start = int(fields.start[0]) + 1
    raw = {"second": chunk.data[start:start + _SECOND_WIDTH].decode("ascii"),
           "code": code, "flags": flags, "details": details,
           "cluster": text("upstream_cluster"), "route": text("route"),
           "authority": text("authority"), "path": text("path"),
           "remote": text("downstream_remote"), "host": text("upstream_host")}
    return _row(source, number, raw, layout.value_of)
