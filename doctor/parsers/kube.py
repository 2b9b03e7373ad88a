"""Kubernetes pods and events as kubectl prints them.

Reads `kubectl get pod(s)` and `kubectl get events` output as JSON or YAML (a
single object, a `List`, `PodList` or `EventList`), and the event table of
`kubectl get events` and `kubectl events` (columns LAST SEEN, TYPE, REASON,
OBJECT, MESSAGE, optionally NAMESPACE first). Also owns the parsing of
Kubernetes resource quantities ("128Mi", "500M", "100m").

One document yields one `ParseResult`, whose kind is `KIND_PODS` when the
document contains any pod and `KIND_EVENTS` otherwise.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any, Iterable

from doctor.model import Document, ParseProblem, ParseResult
from doctor.parsers.structured import key_line, load_documents, node_line

logger = logging.getLogger(__name__)

KIND_PODS = "kubernetes-pods"
KIND_EVENTS = "kubernetes-events"


@dataclass(frozen=True)
class ContainerInfo:
    """One container of a pod with its spec limits and its status.

    `is_init` is True for init containers, which include istio-proxy when it
    runs as a native sidecar (an init container with restartPolicy Always).
    Memory values are bytes; CPU values are millicores.
    """

    name: str
    is_init: bool
    is_native_sidecar: bool
    image: str | None
    memory_limit_bytes: int | None
    memory_request_bytes: int | None
    cpu_limit_millicores: int | None
    cpu_request_millicores: int | None
    ready: bool | None
    restart_count: int
    state: str | None  # "running", "waiting" or "terminated"
    state_reason: str | None
    state_exit_code: int | None
    state_started_at: datetime | None
    state_finished_at: datetime | None
    last_state_reason: str | None
    last_exit_code: int | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    line: int | None  # line of the container's status (or spec) in the source
    memory_limit_line: int | None = None  # line of resources.limits.memory, when known
    state_line: int | None = None  # line of the current state's reason (or exit code)
    last_state_line: int | None = None  # line of the last state's reason (or exit code)


@dataclass(frozen=True)
class PodInfo:
    source: str
    line: int | None
    namespace: str | None
    name: str
    pod_ip: str | None
    pod_ips: tuple[str, ...]
    host_ip: str | None
    node_name: str | None
    phase: str | None
    service_account: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    containers: tuple[ContainerInfo, ...]
    service_account_line: int | None = None  # line of spec.serviceAccountName, when known


@dataclass(frozen=True)
class KubeEvent:
    source: str
    line: int | None
    namespace: str | None
    involved_kind: str | None
    involved_name: str | None
    event_type: str | None
    reason: str | None
    message: str
    count: int
    first_timestamp: datetime | None
    last_timestamp: datetime | None


# ---------------------------------------------------------------------------
# Quantities

_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
                     "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"),
                     "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18")}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$")


def parse_quantity(value: object) -> Decimal:
    """Parse a Kubernetes resource quantity into its plain value.

    Raises ValueError naming the value when it is not a quantity.
    """
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"invalid Kubernetes quantity {text!r} (expected a form like 128Mi, 500M, 100m or 2)")
    number, suffix = match.groups()
    try:
        amount = Decimal(number)
    except InvalidOperation as error:
        raise ValueError(f"invalid Kubernetes quantity {text!r}") from error
    if suffix in _BINARY_SUFFIXES:
        return amount * _BINARY_SUFFIXES[suffix]
    return amount * _DECIMAL_SUFFIXES[suffix]


def parse_memory_bytes(value: object) -> int:
    """Parse a memory quantity ("128Mi", "1Gi", "500M", "134217728") into bytes."""
    return int(parse_quantity(value).to_integral_value(rounding=ROUND_CEILING))


def parse_cpu_millicores(value: object) -> int:
    """Parse a CPU quantity ("100m", "2", "0.5", "250000n") into millicores."""
    return int((parse_quantity(value) * 1000).to_integral_value(rounding=ROUND_CEILING))


# ---------------------------------------------------------------------------
# Sniffing

# Above this size a JSON document is read with the JSON loader. A 12 MiB pod list
# took 5 s through the line-tracking YAML loader and 0.2 s this way (2 cores).
_LARGE_JSON_CHARACTERS = 2 * 1024 * 1024
_OBJECT_KIND = re.compile(r'(?m)^\s*"?kind"?\s*:\s*"?(Pod|PodList|Event|EventList)"?\s*,?\s*$')
_LIST_KIND = re.compile(r'(?m)^\s*"?kind"?\s*:\s*"?List"?\s*,?\s*$')
_STRUCTURED_START = re.compile(r'^(?:\{|---|[A-Za-z"][\w"-]*\s*:)')
_EVENT_TABLE_HEADER = re.compile(r"^(?:NAMESPACE\s+)?LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+.*MESSAGE")
_TABLE_COLUMNS = ("NAMESPACE", "LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE",
                  "MESSAGE", "FIRST SEEN", "COUNT", "NAME")


def sniff(doc: Document) -> bool:
    """Return True for pod or event objects in JSON or YAML, or an event table."""
    head = doc.text.lstrip()
    if _EVENT_TABLE_HEADER.match(_first_line(head)):
        return True
    if not _STRUCTURED_START.match(head[:200]):
        return False
    if _OBJECT_KIND.search(doc.text):
        return True
    # A `List` whose items carry no kind of their own: look for pod or event shapes.
    return bool(_LIST_KIND.search(doc.text)) and (
        "containerStatuses" in doc.text or "involvedObject" in doc.text)


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]


# ---------------------------------------------------------------------------
# Objects


def parse(doc: Document) -> ParseResult:
    """Read the pods and events of one document; anything else is a problem."""
    if _EVENT_TABLE_HEADER.match(_first_line(doc.text.lstrip())):
        return _parse_event_table(doc)

    problems: list[ParseProblem] = []
    facts: list[Any] = []
    for kind, item, line in _load_objects(doc, problems):
        if kind == "Pod":
            facts.append(_pod(doc.source, item, line, problems))
        elif kind == "Event":
            facts.append(_event(doc.source, item, line, problems))
        elif _is_istio_object(item):
            continue  # doctor.parsers.istio reads these from the same document
        else:
            what = f"a {kind}" if kind else "an object without kind"
            problems.append(ParseProblem(doc.source, line, f"{what} is not a Pod or Event; not read"))

    kind = KIND_PODS if any(isinstance(fact, PodInfo) for fact in facts) else KIND_EVENTS
    return ParseResult(kind, facts, problems)


def _load_objects(doc: Document, problems: list[ParseProblem]) -> Iterable[tuple[str | None, Any, int | None]]:
    is_json = doc.text.lstrip().startswith("{")
    errors = []
    if not (is_json and len(doc.text) > _LARGE_JSON_CHARACTERS):
        documents, errors = load_documents(doc.text)
    if is_json and (errors or len(doc.text) > _LARGE_JSON_CHARACTERS):
        # The YAML loader rejects some valid JSON (surrogate pair escapes, for
        # one) and is slow on large lists, so read those with the JSON loader
        # and find each object's line by searching. Containers then have no line.
        try:
            data = json.loads(doc.text)
        except ValueError as error:
            problems.append(ParseProblem(doc.source, getattr(error, "lineno", None), f"invalid JSON: {error}"))
            return
        yield from _objects_with_searched_lines(doc.text, data)
        return

    for error in errors:
        problems.append(ParseProblem(doc.source, error.line, error.message))
    for loaded in documents:
        yield from _expand(loaded.data, loaded.line)


def _expand(data: Any, line: int | None,
            item_kind: str | None = None) -> Iterable[tuple[str | None, Any, int | None]]:
    """Yield (kind, object, line) for an object, or for each item of a list object."""
    if not isinstance(data, dict):
        yield None, data, line
        return

    kind = data.get("kind") or item_kind or _guess_kind(data)
    items = data.get("items")
    if isinstance(items, list) and kind in ("List", "PodList", "EventList", None):
        inner = {"PodList": "Pod", "EventList": "Event"}.get(str(kind))
        for index, item in enumerate(items):
            yield from _expand(item, node_line(item) or key_line(items, index) or line, inner)
        return
    yield (str(kind) if kind else None), data, node_line(data) or line


def _guess_kind(data: dict) -> str | None:
    spec = data.get("spec")
    if isinstance(spec, dict) and "containers" in spec:
        return "Pod"
    if "involvedObject" in data or "regarding" in data:
        return "Event"
    return None


def _objects_with_searched_lines(text: str, data: Any) -> Iterable[tuple[str | None, Any, int | None]]:
    """Yield the objects with the line of their `metadata.name`, searched in order."""
    cursor = 0
    line = 1
    for kind, item, _ in _expand(data, None):
        metadata = item.get("metadata") if isinstance(item, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        found = None
        if isinstance(name, str):
            position = text.find(json.dumps(name), cursor)
            if position >= 0:
                line += text.count("\n", cursor, position)
                cursor = position + 1
                found = line
        yield kind, item, found


def _pod(source: str, pod: dict, line: int | None, problems: list[ParseProblem]) -> PodInfo:
    metadata = _mapping(pod.get("metadata"))
    spec = _mapping(pod.get("spec"))
    status = _mapping(pod.get("status"))
    name = str(metadata.get("name") or "")
    if not name:
        problems.append(ParseProblem(source, line, "Pod without metadata.name"))

    statuses: dict[tuple[bool, Any], tuple[dict, int | None]] = {}
    for list_key, is_init in (("containerStatuses", False), ("initContainerStatuses", True)):
        entries = _list(status.get(list_key))
        for index, entry in enumerate(entries):
            statuses[(is_init, _mapping(entry).get("name"))] = (
                _mapping(entry), node_line(entry) or key_line(entries, index))

    containers: list[ContainerInfo] = []
    for list_key, is_init in (("initContainers", True), ("containers", False)):
        entries = _list(spec.get(list_key))
        for index, entry in enumerate(entries):
            entry = _mapping(entry)
            key = (is_init, entry.get("name"))
            status_entry, status_line = statuses.pop(key, ({}, None))
            spec_line = node_line(entry) or key_line(entries, index)
            containers.append(_container(source, entry, status_entry, is_init,
                                         status_line or spec_line, problems))
    # A status whose container the spec does not list (a trimmed dump) still counts.
    for (is_init, _), (status_entry, status_line) in statuses.items():
        containers.append(_container(source, {}, status_entry, is_init, status_line, problems))

    pod_ip = _str(status.get("podIP"))
    pod_ips = tuple(str(entry["ip"]) for entry in _list(status.get("podIPs"))
                    if isinstance(entry, dict) and entry.get("ip"))
    if pod_ip and pod_ip not in pod_ips:
        pod_ips = (pod_ip,) + pod_ips

    return PodInfo(
        source=source,
        line=line,
        namespace=_str(metadata.get("namespace")),
        name=name,
        pod_ip=pod_ip,
        pod_ips=pod_ips,
        host_ip=_str(status.get("hostIP")),
        node_name=_str(spec.get("nodeName")),
        phase=_str(status.get("phase")),
        service_account=_str(spec.get("serviceAccountName") or spec.get("serviceAccount")),
        service_account_line=key_line(spec, "serviceAccountName") or key_line(spec, "serviceAccount"),
        labels={str(key): str(value) for key, value in _mapping(metadata.get("labels")).items()},
        annotations={str(key): str(value) for key, value in _mapping(metadata.get("annotations")).items()},
        containers=tuple(containers),
    )


def _container(source: str, spec: dict, status: dict, is_init: bool, line: int | None,
               problems: list[ParseProblem]) -> ContainerInfo:
    name = str(spec.get("name") or status.get("name") or "")
    resources = _mapping(spec.get("resources"))
    limits = _mapping(resources.get("limits"))
    requests = _mapping(resources.get("requests"))

    def quantity(values: dict, key: str, parse_value: Any) -> int | None:
        raw = values.get(key)
        if raw is None:
            return None
        try:
            return parse_value(raw)
        except ValueError as error:
            problems.append(ParseProblem(source, key_line(values, key) or line,
                                         f"container {name!r}: {error}"))
            return None

    def moment(value: Any) -> datetime | None:
        return _time(value, source, line, problems)

    state_name, state = _state(status.get("state"))
    _, last_state = _state(status.get("lastState"))
    restart_count = _int(status.get("restartCount"))
    return ContainerInfo(
        name=name,
        is_init=is_init,
        is_native_sidecar=is_init and spec.get("restartPolicy") == "Always",
        image=_str(spec.get("image") or status.get("image")),
        memory_limit_bytes=quantity(limits, "memory", parse_memory_bytes),
        memory_request_bytes=quantity(requests, "memory", parse_memory_bytes),
        cpu_limit_millicores=quantity(limits, "cpu", parse_cpu_millicores),
        cpu_request_millicores=quantity(requests, "cpu", parse_cpu_millicores),
        ready=status.get("ready") if isinstance(status.get("ready"), bool) else None,
        restart_count=restart_count or 0,
        state=state_name,
        state_reason=_str(state.get("reason")),
        state_exit_code=_int(state.get("exitCode")),
        state_started_at=moment(state.get("startedAt")),
        state_finished_at=moment(state.get("finishedAt")),
        last_state_reason=_str(last_state.get("reason")),
        last_exit_code=_int(last_state.get("exitCode")),
        last_started_at=moment(last_state.get("startedAt")),
        last_finished_at=moment(last_state.get("finishedAt")),
        line=line,
        memory_limit_line=key_line(limits, "memory"),
        state_line=key_line(state, "reason") or key_line(state, "exitCode"),
        last_state_line=key_line(last_state, "reason") or key_line(last_state, "exitCode"),
    )


def _is_istio_object(item: Any) -> bool:
    api_version = item.get("apiVersion") if isinstance(item, dict) else None
    return isinstance(api_version, str) and ".istio.io/" in api_version


def _state(value: Any) -> tuple[str | None, dict]:
    """Return the name and body of a container state such as {"terminated": {...}}."""
    for name in ("terminated", "waiting", "running"):
        body = _mapping(value).get(name)
        if isinstance(body, dict):
            return name, body
    return None, {}


def _event(source: str, event: dict, line: int | None, problems: list[ParseProblem]) -> KubeEvent:
    """Read a core/v1 Event, or an events.k8s.io/v1 Event (regarding, note, series)."""
    metadata = _mapping(event.get("metadata"))
    involved = _mapping(event.get("involvedObject") or event.get("regarding"))
    series = _mapping(event.get("series"))
    count = _int(event.get("count") or event.get("deprecatedCount") or series.get("count")) or 1
    first = event.get("firstTimestamp") or event.get("deprecatedFirstTimestamp") or event.get("eventTime")
    last = (event.get("lastTimestamp") or event.get("deprecatedLastTimestamp")
            or series.get("lastObservedTime") or event.get("eventTime"))
    return KubeEvent(
        source=source,
        line=line,
        namespace=_str(metadata.get("namespace") or involved.get("namespace")),
        involved_kind=_str(involved.get("kind")),
        involved_name=_str(involved.get("name")),
        event_type=_str(event.get("type")),
        reason=_str(event.get("reason")),
        message=str(event.get("message") or event.get("note") or ""),
        count=count,
        first_timestamp=_time(first, source, line, problems),
        last_timestamp=_time(last, source, line, problems),
    )


# ---------------------------------------------------------------------------
# Event tables

_LAST_SEEN_COUNT = re.compile(r"\(x(\d+) over [^)]*\)")


def _parse_event_table(doc: Document) -> ParseResult:
    result = ParseResult(KIND_EVENTS)
    columns: list[tuple[str, int]] = []
    for index, line in enumerate(doc.text.splitlines()):
        if not line.strip():
            continue
        if _EVENT_TABLE_HEADER.match(line):
            columns = _table_columns(line)  # each namespace's table has its own header
            continue
        cells = _table_cells(line, columns)
        if cells is None:
            result.problems.append(ParseProblem(
                doc.source, index + 1, "row does not line up with the columns of the event table header"))
            continue
        result.facts.append(_table_event(doc.source, index + 1, cells))
    return result


def _table_event(source: str, line: int, cells: dict[str, str]) -> KubeEvent:
    obj = cells.get("OBJECT", "")
    resource, _, involved_name = obj.partition("/")
    count_match = _LAST_SEEN_COUNT.search(cells.get("LAST SEEN", ""))
    count = int(count_match.group(1)) if count_match else _int(cells.get("COUNT")) or 1
    return KubeEvent(
        source=source,
        line=line,
        namespace=cells.get("NAMESPACE") or None,
        # OBJECT reads "pod/NAME", so the capitalized resource name is used as the kind.
        involved_kind=resource.capitalize() if involved_name else None,
        involved_name=involved_name or obj or None,
        event_type=cells.get("TYPE") or None,
        reason=cells.get("REASON") or None,
        message=cells.get("MESSAGE", ""),
        count=count,
        # The table shows ages such as "2m" relative to when it was printed, not times.
        first_timestamp=None,
        last_timestamp=None,
    )


def _table_columns(header: str) -> list[tuple[str, int]]:
    columns = []
    for name in _TABLE_COLUMNS:
        match = re.search(r"(?:^|\s)(" + re.escape(name) + r")(?=\s|$)", header)
        if match:
            columns.append((name, match.start(1)))
    return sorted(columns, key=lambda column: column[1])


def _table_cells(line: str, columns: list[tuple[str, int]]) -> dict[str, str] | None:
    """Cut a row at the header's column starts; None when a value runs across one."""
    if not columns:
        return None
    cells = {}
    for position, (name, start) in enumerate(columns):
        end = columns[position + 1][1] if position + 1 < len(columns) else None
        if 0 < start < len(line) and line[start - 1] not in " \t":
            return None
        cells[name] = line[start:end].strip()
    return cells


# ---------------------------------------------------------------------------
# Small helpers


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def _time(value: Any, source: str, line: int | None, problems: list[ParseProblem]) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        problems.append(ParseProblem(source, line, f"invalid timestamp {value!r}; expected RFC 3339"))
        return None
