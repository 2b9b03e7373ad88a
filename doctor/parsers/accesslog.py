"""Envoy access logs: Istio's default TEXT format (before and since 1.24) and JSON.

Istio's default TEXT format has the same field order before and since 1.24.
The only change is the cluster field: `%UPSTREAM_CLUSTER%` became
`%UPSTREAM_CLUSTER_RAW%`. Since Istio 1.24 names cluster stats with a
trailing `;`, and `%UPSTREAM_CLUSTER%` prints that stat name, so the old
format on a new proxy shows `outbound|8080||svc.ns.svc.cluster.local;`
(recorded from Envoy 1.40 in tests/data/recorded/). So `log_format` is
"text-legacy" only when the cluster value ends with `;`. Any other Istio
TEXT line reads the same under both formats and is labelled "text-1.24",
although a proxy before Istio 1.24 may have written it. Envoy's own default
format (no Istio fields) and JSON objects, one per line or pretty-printed
over several lines, are read too. A file may mix them; every other non-blank
line becomes a `ParseProblem`.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator, Sequence

from doctor.model import Document, ParseProblem, ParseResult

logger = logging.getLogger(__name__)

KIND = "envoy-access-log"


@dataclass(frozen=True)
class AccessLogEntry:
    """One request or connection as an Envoy access log line records it.

    Fields the log shows as `-` are None (strings, numbers) or empty (flags).
    `direction` is "inbound" or "outbound" when the upstream cluster name or
    the requested server name (SNI) shows it, else None.
    """

    source: str
    line: int
    text: str
    timestamp: datetime | None
    method: str | None
    path: str | None
    protocol: str | None
    response_code: int | None
    response_flags: tuple[str, ...]
    response_code_details: str | None
    connection_termination_details: str | None
    upstream_transport_failure_reason: str | None
    bytes_received: int | None
    bytes_sent: int | None
    duration_ms: int | None
    upstream_service_time_ms: int | None
    x_forwarded_for: str | None
    user_agent: str | None
    request_id: str | None
    authority: str | None
    upstream_host: str | None
    upstream_cluster: str | None
    upstream_local_address: str | None
    downstream_local_address: str | None
    downstream_remote_address: str | None
    requested_server_name: str | None
    route_name: str | None
    direction: str | None
    log_format: str  # "text-1.24", "text-legacy", "text-envoy" or "json"
    end_line: int | None = None  # last line of a pretty-printed JSON object, else None


# `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS%`,
# the prefix every TEXT format here shares. A prefix before the `[` (such as
# the timestamp `kubectl logs --timestamps` adds) is allowed.
_REQUEST = (
    r'\[(?P<timestamp>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" '
    r"(?P<response_code>\d+) (?P<response_flags>\S+) "
)
# Istio's TEXT format, from %RESPONSE_CODE_DETAILS% to %ROUTE_NAME%. Group
# names are AccessLogEntry field names.
_ISTIO_REST = (
    r"(?P<response_code_details>\S+) (?P<connection_termination_details>\S+) "
    r'"(?P<upstream_transport_failure_reason>[^"]*)" '
    r"(?P<bytes_received>\S+) (?P<bytes_sent>\S+) (?P<duration_ms>\S+) "
    r"(?P<upstream_service_time_ms>\S+) "
    r'"(?P<x_forwarded_for>[^"]*)" "(?P<user_agent>.*?)" "(?P<request_id>[^"]*)" '
    r'"(?P<authority>[^"]*)" "(?P<upstream_host>[^"]*)" (?P<upstream_cluster>\S+) '
    r"(?P<upstream_local_address>\S+) (?P<downstream_local_address>\S+) "
    r"(?P<downstream_remote_address>\S+) (?P<requested_server_name>\S+) (?P<route_name>\S+)\s*$"
)
# Envoy's default format, from %BYTES_RECEIVED% to "%UPSTREAM_HOST%".
_ENVOY_REST = (
    r"(?P<bytes_received>\S+) (?P<bytes_sent>\S+) (?P<duration_ms>\S+) "
    r"(?P<upstream_service_time_ms>\S+) "
    r'"(?P<x_forwarded_for>[^"]*)" "(?P<user_agent>.*?)" "(?P<request_id>[^"]*)" '
    r'"(?P<authority>[^"]*)" "(?P<upstream_host>[^"]*)"\s*$'
)
_ISTIO_TEXT = re.compile(_REQUEST + _ISTIO_REST)
_ENVOY_TEXT = re.compile(_REQUEST + _ENVOY_REST)
_TEXT_START = re.compile(r'\[\d{4}-\d\d-\d\d[T ][^\]]*\] "')

# Keys of Istio's JSON access-log format, mapped to AccessLogEntry fields.
_JSON_KEYS = {
    "start_time": "timestamp",
    "method": "method",
    "path": "path",
    "protocol": "protocol",
    "response_code": "response_code",
    "response_flags": "response_flags",
    "response_code_details": "response_code_details",
    "connection_termination_details": "connection_termination_details",
    "upstream_transport_failure_reason": "upstream_transport_failure_reason",
    "bytes_received": "bytes_received",
    "bytes_sent": "bytes_sent",
    "duration": "duration_ms",
    "upstream_service_time": "upstream_service_time_ms",
    "x_forwarded_for": "x_forwarded_for",
    "user_agent": "user_agent",
    "request_id": "request_id",
    "authority": "authority",
    "upstream_host": "upstream_host",
    "upstream_cluster": "upstream_cluster",
    "upstream_local_address": "upstream_local_address",
    "downstream_local_address": "downstream_local_address",
    "downstream_remote_address": "downstream_remote_address",
    "requested_server_name": "requested_server_name",
    "route_name": "route_name",
}
# A JSON object is an access-log entry when it has a status and one of these.
_JSON_REQUIRED_ANY = ("upstream_cluster", "upstream_host", "response_flags", "start_time")

# A pretty-printed object longer than this is not read as one entry.
_MAX_JSON_BLOCK_LINES = 400
_SNIFF_LINES = 200


def sniff(doc: Document) -> bool:
    """Return True when one of the first lines is an access-log entry."""
    head = "\n".join(doc.text.splitlines()[:_SNIFF_LINES])
    for item in _scan(Document(doc.source, head)):
        if isinstance(item, AccessLogEntry):
            return True
    return False


def parse(doc: Document) -> ParseResult:
    """Read every access-log entry; any other non-blank line is a problem."""
    result = ParseResult(KIND)
    for item in _scan(doc):
        if isinstance(item, AccessLogEntry):
            result.facts.append(item)
        else:
            result.problems.append(item)
    if result.problems:
        logger.debug("%s: %d lines are not access-log entries", doc.source, len(result.problems))
    return result


def parse_line(source: str, line_number: int, line: str) -> AccessLogEntry | None:
    """Parse one TEXT or single-line JSON entry, or return None."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except ValueError:
            return None
        if not _is_access_json(value):
            return None
        return _from_json(source, line_number, stripped, value, None)
    return parse_text_line(source, line_number, line.rstrip("\r\n"))


def _scan(doc: Document) -> Iterator[AccessLogEntry | ParseProblem]:
    lines = doc.text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        line_number = index + 1
        if not stripped:
            index += 1
            continue

        if stripped.startswith("{"):
            consumed, item = read_json_object(doc.source, lines, index)
            yield item
            if isinstance(item, ParseProblem):
                # Each further line of an object that is not an entry is reported too.
                for offset in range(1, consumed):
                    if lines[index + offset].strip():
                        yield ParseProblem(doc.source, line_number + offset,
                                           f"part of the JSON object that starts on line {line_number}")
            index += consumed
            continue

        entry = parse_text_line(doc.source, line_number, line.rstrip("\r\n"))
        if entry is not None:
            yield entry
        else:
            yield ParseProblem(doc.source, line_number, describe_text_problem(stripped))
        index += 1


def describe_text_problem(stripped: str) -> str:
    """Return the problem message for a stripped line that is not an access-log entry."""
    if _TEXT_START.search(stripped):
        return ("line starts like an Envoy TEXT access-log entry but its fields do not match "
                "Istio's default format or Envoy's default format (truncated or custom format?)")
    return "not an Envoy access-log entry (neither Istio/Envoy TEXT format nor a JSON object)"


def read_json_object(source: str, lines: Sequence[str],
                     start: int) -> tuple[int, AccessLogEntry | ParseProblem]:
    """Read a JSON object starting at `lines[start]`, on one line or pretty-printed.

    Returns how many lines it consumed and the entry or a problem. A block that
    never becomes valid JSON consumes only its first line, so the lines after it
    are read on their own.
    """
    line_number = start + 1
    first = lines[start].strip()
    try:
        value = json.loads(first)
    except ValueError:
        pass
    else:
        return 1, _json_item(source, line_number, first, value, None)

    indent = _indent(lines[start])
    block = [lines[start]]
    for offset in range(1, min(_MAX_JSON_BLOCK_LINES, len(lines) - start)):
        following = lines[start + offset]
        at_same_level = _indent(following) == indent
        if at_same_level and following.strip().startswith("{"):
            break  # the next object starts, so this one was never closed
        block.append(following)
        if not (at_same_level and following.strip().startswith("}")):
            continue
        try:
            value = json.loads("\n".join(block))
        except ValueError:
            continue
        compact = json.dumps(value, separators=(",", ":"))
        return offset + 1, _json_item(source, line_number, compact, value, start + offset + 1)

    return 1, ParseProblem(source, line_number,
                           "JSON object is not valid or not closed: " + _shorten(first))


def _json_item(source: str, line_number: int, text: str, value: Any,
               end_line: int | None) -> AccessLogEntry | ParseProblem:
    if not _is_access_json(value):
        return ParseProblem(source, line_number,
                            "JSON object without access-log fields (response_code and upstream_cluster, "
                            "upstream_host, response_flags or start_time)")
    return _from_json(source, line_number, text, value, end_line)


def _is_access_json(value: Any) -> bool:
    return (isinstance(value, dict) and "response_code" in value
            and any(key in value for key in _JSON_REQUIRED_ANY))


def _from_json(source: str, line_number: int, text: str, value: dict[str, Any],
               end_line: int | None) -> AccessLogEntry:
    fields = {field: _json_string(value.get(key)) for key, field in _JSON_KEYS.items()}
    return _entry(source, line_number, text, fields, "json", end_line)


def parse_text_line(source: str, line_number: int, line: str) -> AccessLogEntry | None:
    """Parse a line in Istio's or Envoy's TEXT format, or return None when it fits neither."""
    match = _ISTIO_TEXT.search(line)
    istio = match is not None
    if match is None:
        match = _ENVOY_TEXT.search(line)
    if match is None:
        return None

    value = {name: none_if_dash(text) for name, text in match.groupdict().items()}
    raw_cluster = value.get("upstream_cluster")
    if not istio:
        log_format = "text-envoy"
    elif raw_cluster is not None and raw_cluster.endswith(";"):
        log_format = "text-legacy"
    else:
        log_format = "text-1.24"
    return _entry(source, line_number, line, value, log_format)


def _entry(source: str, line_number: int, text: str, fields: dict[str, str | None],
           log_format: str, end_line: int | None = None) -> AccessLogEntry:
    """Build an entry from its field strings, keyed by AccessLogEntry field name.

    Fields that a format lacks (the Istio fields in Envoy's default format)
    are left out of `fields` and become None.
    """
    cluster = strip_cluster_suffix(fields.get("upstream_cluster"))
    requested_server_name = fields.get("requested_server_name")
    return AccessLogEntry(
        source=source,
        line=line_number,
        text=text,
        timestamp=parse_timestamp(fields["timestamp"]),
        method=fields["method"],
        path=fields["path"],
        protocol=fields["protocol"],
        response_code=parse_int(fields["response_code"]),
        response_flags=parse_flags(fields["response_flags"]),
        response_code_details=fields.get("response_code_details"),
        connection_termination_details=fields.get("connection_termination_details"),
        upstream_transport_failure_reason=fields.get("upstream_transport_failure_reason"),
        bytes_received=parse_int(fields["bytes_received"]),
        bytes_sent=parse_int(fields["bytes_sent"]),
        duration_ms=parse_int(fields["duration_ms"]),
        upstream_service_time_ms=parse_int(fields["upstream_service_time_ms"]),
        x_forwarded_for=fields["x_forwarded_for"],
        user_agent=fields["user_agent"],
        request_id=fields["request_id"],
        authority=fields["authority"],
        upstream_host=fields["upstream_host"],
        upstream_cluster=cluster,
        upstream_local_address=fields.get("upstream_local_address"),
        downstream_local_address=fields.get("downstream_local_address"),
        downstream_remote_address=fields.get("downstream_remote_address"),
        requested_server_name=requested_server_name,
        route_name=fields.get("route_name"),
        direction=_direction(cluster, requested_server_name),
        log_format=log_format,
        end_line=end_line,
    )


def none_if_dash(value: str | None) -> str | None:
    """Return None for a field that Envoy logs as `-` or leaves empty, else the value."""
    if value is None or value in ("-", ""):
        return None
    return value


def _json_string(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return none_if_dash(str(value))


def parse_int(value: str | None) -> int | None:
    """Parse a decimal field; return None when it is absent or not an integer."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def parse_flags(value: str | None) -> tuple[str, ...]:
    """Split `%RESPONSE_FLAGS%` at commas; `-` and None give an empty tuple."""
    if value is None:
        return ()
    return tuple(flag for flag in value.split(",") if flag and flag != "-")


def parse_timestamp(value: str | None) -> datetime | None:
    """Parse an ISO 8601 start time; return None when it is absent or invalid."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def strip_cluster_suffix(value: str | None) -> str | None:
    """Return the cluster name without the `;` that Istio 1.24+ stat names end with."""
    if value is None:
        return None
    return value[:-1] if value.endswith(";") else value


def _direction(cluster: str | None, requested_server_name: str | None) -> str | None:
    if cluster is not None:
        if cluster.startswith("inbound|") or cluster.startswith("InboundPassthroughCluster"):
            return "inbound"
        if cluster.startswith("outbound|") or cluster in ("PassthroughCluster", "BlackHoleCluster"):
            return "outbound"
    # A server sidecar receives the SNI that the client sidecar set for the outbound cluster.
    if requested_server_name is not None and requested_server_name.startswith("outbound_."):
        return "inbound"
    return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
