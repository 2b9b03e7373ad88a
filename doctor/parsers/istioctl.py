"""istioctl outputs: proxy-status, proxy-config secret, cluster and endpoint, and analyze.

Tables are read by column header names, never by position, because Istio
releases moved and renamed columns. PROXY became NAME and PILOT became
ISTIOD, CLUSTER and ECDS were added, and since 1.22 the default layout shows
SUBSCRIBED TYPES instead of per-type sync states. istioctl prints tables
with Go's tabwriter, so every cell starts at its header's column offset and
header names are separated by at least two spaces ("SUBSCRIBED TYPES" is one
name).

Structured forms are read too: `proxy-status -o json|yaml` (CSDS
ClientConfig), `proxy-config cluster -o json` (a list of clusters, read with
the Envoy config reader) and `analyze -o json|yaml` (a list of messages).
`proxy-config secret -o json` is a config dump and belongs to
`doctor.parsers.envoy_admin`.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from doctor.model import Document, ParseProblem, ParseResult
from doctor.parsers import envoy_admin
from doctor.parsers.structured import key_line, load_json_documents, node_line

logger = logging.getLogger(__name__)

KIND_PROXY_STATUS = "istioctl-proxy-status"
KIND_SECRETS = "istioctl-proxy-config-secret"
KIND_CLUSTERS = "istioctl-proxy-config-cluster"
KIND_ENDPOINTS = "istioctl-proxy-config-endpoint"
KIND_ANALYZE = "istioctl-analyze"
KINDS = (KIND_PROXY_STATUS, KIND_SECRETS, KIND_CLUSTERS, KIND_ENDPOINTS, KIND_ANALYZE)
# Reported when parsing fails before the document's kind is known.
KIND = "istioctl"

XDS_TYPES = ("CDS", "LDS", "EDS", "RDS", "ECDS", "SDS", "NDS")
_TYPE_URLS = {
    "envoy.config.cluster.v3.Cluster": "CDS",
    "envoy.config.listener.v3.Listener": "LDS",
    "envoy.config.endpoint.v3.ClusterLoadAssignment": "EDS",
    "envoy.config.route.v3.RouteConfiguration": "RDS",
    "envoy.config.core.v3.TypedExtensionConfig": "ECDS",
    "envoy.extensions.transport_sockets.tls.v3.Secret": "SDS",
    "istio.networking.nds.v1.NameTable": "NDS",
}
IN_SYNC_STATES = ("SYNCED", "IGNORED")


# --- facts ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProxySyncStatus:
    """One proxy of `istioctl proxy-status`.

    `sync` maps an xDS type (CDS, LDS, EDS, RDS, ECDS) to its state: SYNCED,
    STALE, NOT SENT or IGNORED. `sync_details` keeps the rest of the cell,
    such as "1h0m0s", "Never Acknowledged" or "100%". The layout since Istio
    1.22 has no per-type states by default, only `subscribed_types`.
    """

    source: str
    line: int | None
    text: str
    proxy: str
    cluster: str | None
    istiod: str | None
    version: str | None
    sync: dict[str, str] = field(default_factory=dict)
    sync_details: dict[str, str] = field(default_factory=dict)
    subscribed_types: tuple[str, ...] | None = None

    @property
    def not_synced(self) -> dict[str, str]:
        """The xDS types whose state is STALE or NOT SENT, with their state."""
        return {kind: state for kind, state in self.sync.items() if state not in IN_SYNC_STATES}


@dataclass(frozen=True)
class SecretStatus:
    """One row of `istioctl proxy-config secret`."""

    source: str
    line: int
    text: str
    resource_name: str
    secret_type: str | None
    status: str | None
    valid_cert: bool | None
    serial_number: str | None
    not_after: datetime | None
    not_before: datetime | None
    trust_domain: str | None


@dataclass(frozen=True)
class ClusterSummary:
    """One row of `istioctl proxy-config cluster`: `destination_rule` is "name.namespace"."""

    source: str
    line: int
    text: str
    service_fqdn: str
    port: int | None
    subset: str | None
    direction: str | None
    cluster_type: str | None
    destination_rule: str | None

    @property
    def cluster_name(self) -> str:
        """The Envoy cluster name Istio builds from the row, such as outbound|80||host."""
        if self.direction in ("outbound", "inbound") and self.port is not None:
            return f"{self.direction}|{self.port}|{self.subset or ''}|{self.service_fqdn}"
        return self.service_fqdn


@dataclass(frozen=True)
class EndpointStatus:
    """One row of `istioctl proxy-config endpoint`: an upstream host of a cluster and its health.

    `outlier_check` is "OK" or "FAILED" where the layout has the OUTLIER CHECK column.
    """

    source: str
    line: int
    text: str
    address: str
    status: str | None
    outlier_check: str | None
    locality: str | None
    cluster: str


@dataclass(frozen=True)
class AnalyzeMessage:
    """One `istioctl analyze` message, such as IST0101 ReferencedResourceNotFound."""

    source: str
    line: int | None
    text: str
    code: str
    level: str | None
    message: str
    origin: str | None
    reference: str | None
    documentation_url: str | None


# --- tables -----------------------------------------------------------------------------------

_HEADER_NAME = re.compile(r"\S+(?: \S+)*")


@dataclass(frozen=True)
class _Column:
    name: str
    start: int


def _header_columns(line: str) -> list[_Column]:
    return [_Column(match.group(0), match.start()) for match in _HEADER_NAME.finditer(line)]


def _cells(line: str, columns: list[_Column]) -> dict[str, str]:
    cells = {}
    for index, column in enumerate(columns):
        end = columns[index + 1].start if index + 1 < len(columns) else None
        cells[column.name] = line[column.start:end].strip() if end is not None else line[column.start:].strip()
    return cells


def _find_header(lines: list[str]) -> tuple[int, list[_Column]] | None:
    """Return the index and columns of the first table header, skipping echoed commands."""
    for index, line in enumerate(lines[:20]):
        stripped = line.strip()
        if not stripped or stripped.startswith(("$", "#")):
            continue
        columns = _header_columns(line)
        names = {column.name for column in columns}
        if _table_kind(names) is not None:
            return index, columns
        return None
    return None


def _table_kind(names: set[str]) -> str | None:
    if names & {"NAME", "PROXY"} and "VERSION" in names and (
            names & {"ISTIOD", "PILOT", "SUBSCRIBED TYPES"} or names & set(XDS_TYPES)):
        return KIND_PROXY_STATUS
    if {"RESOURCE NAME", "TYPE", "STATUS", "VALID CERT"} <= names:
        return KIND_SECRETS
    if {"SERVICE FQDN", "PORT", "DIRECTION", "TYPE"} <= names:
        return KIND_CLUSTERS
    if names & {"ENDPOINT", "NAME"} and {"STATUS", "CLUSTER"} <= names:
        return KIND_ENDPOINTS
    return None


def _row_is_aligned(line: str, columns: list[_Column]) -> bool:
    """True when no cell spills over a column start: the character before each start is a space."""
    for column in columns[1:]:
        if column.start < len(line) and column.start > 0 and not line[column.start - 1].isspace():
            return False
    return True


# --- sniff and parse --------------------------------------------------------------------------

def detect_kind(doc: Document) -> str | None:
    lines = doc.text.splitlines()
    found = _find_header(lines)
    if found is not None:
        return _table_kind({column.name for column in found[1]})

    head = doc.text.lstrip()[:4096]
    if "envoy.service.status.v3.ClientConfig" in head or "genericXdsConfigs" in head:
        return KIND_PROXY_STATUS
    if head.startswith(("[", "- code:", "-   code:")) and re.search(r"IST\d{4}|\bcode\b", head):
        documents, _ = load_json_documents(doc.text)
        if documents and _is_analyze(documents[0].data):
            return KIND_ANALYZE
    if head.startswith("["):
        documents, _ = load_json_documents(doc.text)
        if documents and _is_cluster_list(documents[0].data):
            return KIND_CLUSTERS
    return None


def sniff(doc: Document) -> bool:
    return detect_kind(doc) is not None


def parse(doc: Document) -> ParseResult:
    kind = detect_kind(doc)
    if kind is None:
        return ParseResult(KIND, problems=[ParseProblem(
            doc.source, None, "not a recognised istioctl output (proxy-status, proxy-config secret "
                              "or cluster, analyze)")])
    lines = doc.text.splitlines()
    header = _find_header(lines)
    if header is not None:
        return _parse_table(doc, kind, lines, *header)
    if kind == KIND_PROXY_STATUS:
        return _parse_client_configs(doc, lines)
    if kind == KIND_ANALYZE:
        return _parse_analyze(doc, lines)
    return _parse_cluster_list(doc, lines)


def _parse_table(doc: Document, kind: str, lines: list[str], header_index: int,
                 columns: list[_Column]) -> ParseResult:
    result = ParseResult(kind)
    for index in range(header_index + 1, len(lines)):
        line = lines[index]
        number = index + 1
        if not line.strip():
            continue
        if not _row_is_aligned(line, columns) or len(line.strip().split()) == 1 and line.strip() == "...":
            result.problems.append(ParseProblem(
                doc.source, number, f"row does not line up with the table header: {line.strip()[:120]!r}"))
            continue
        cells = _cells(line, columns)
        if kind == KIND_PROXY_STATUS:
            result.facts.append(_proxy_status_row(doc.source, number, line, cells))
        elif kind == KIND_SECRETS:
            result.facts.append(_secret_row(doc.source, number, line, cells))
        elif kind == KIND_ENDPOINTS:
            result.facts.append(EndpointStatus(
                source=doc.source, line=number, text=line.rstrip(),
                address=cells.get("ENDPOINT") or cells.get("NAME") or "",
                status=cells.get("STATUS") or None, outlier_check=cells.get("OUTLIER CHECK") or None,
                locality=cells.get("LOCALITY") or None, cluster=cells.get("CLUSTER", "")))
        else:
            result.facts.append(_cluster_row(doc.source, number, line, cells))
    return result


_STATE = re.compile(r"^(SYNCED|STALE|NOT SENT|NOT_SENT|IGNORED|ERROR)\b\s*(.*)$")


def _split_state(cell: str) -> tuple[str, str]:
    """Split "STALE (1h0m0s) (0%)" into ("STALE", "1h0m0s 0%")."""
    match = _STATE.match(cell)
    if match is None:
        return cell, ""
    state = match.group(1).replace("_", " ")
    detail = " ".join(part.strip("()") for part in re.findall(r"\([^)]*\)", match.group(2)))
    return state, detail


def _proxy_status_row(source: str, number: int, line: str, cells: dict[str, str]) -> ProxySyncStatus:
    sync: dict[str, str] = {}
    details: dict[str, str] = {}
    for kind in XDS_TYPES:
        if kind in cells and cells[kind]:
            state, detail = _split_state(cells[kind])
            sync[kind] = state
            if detail:
                details[kind] = detail
    subscribed = None
    if "SUBSCRIBED TYPES" in cells:
        match = re.search(r"\(([^)]*)\)", cells["SUBSCRIBED TYPES"])
        subscribed = tuple(item.strip() for item in match.group(1).split(",")) if match else ()
    return ProxySyncStatus(
        source=source,
        line=number,
        text=line.rstrip(),
        proxy=cells.get("NAME") or cells.get("PROXY") or "",
        cluster=cells.get("CLUSTER") or None,
        istiod=cells.get("ISTIOD") or cells.get("PILOT") or None,
        version=cells.get("VERSION") or None,
        sync=sync,
        sync_details=details,
        subscribed_types=subscribed,
    )


def _secret_row(source: str, number: int, line: str, cells: dict[str, str]) -> SecretStatus:
    valid = cells.get("VALID CERT", "").lower()
    valid_cert = None
    if valid in ("true", "false"):
        valid_cert = valid == "true"
    return SecretStatus(
        source=source,
        line=number,
        text=line.rstrip(),
        resource_name=cells.get("RESOURCE NAME", ""),
        secret_type=cells.get("TYPE") or None,
        status=cells.get("STATUS") or None,
        valid_cert=valid_cert,
        serial_number=cells.get("SERIAL NUMBER") or None,
        not_after=envoy_admin.parse_utc_timestamp(cells.get("NOT AFTER")),
        not_before=envoy_admin.parse_utc_timestamp(cells.get("NOT BEFORE")),
        trust_domain=cells.get("TRUST DOMAIN") or None,
    )


def _cluster_row(source: str, number: int, line: str, cells: dict[str, str]) -> ClusterSummary:
    def value(name: str) -> str | None:
        cell = cells.get(name, "")
        return None if cell in ("", "-") else cell

    port = value("PORT")
    return ClusterSummary(
        source=source,
        line=number,
        text=line.rstrip(),
        service_fqdn=cells.get("SERVICE FQDN", ""),
        port=int(port) if port and port.isdigit() else None,
        subset=value("SUBSET"),
        direction=value("DIRECTION"),
        cluster_type=value("TYPE"),
        destination_rule=value("DESTINATION RULE"),
    )


# --- structured forms -------------------------------------------------------------------------

def _parse_client_configs(doc: Document, lines: list[str]) -> ParseResult:
    result, documents = envoy_admin.load_json_result(doc, KIND_PROXY_STATUS)
    for loaded in documents:
        data = loaded.data
        if not isinstance(data, dict):
            continue
        istiod = _control_plane_id(data.get("controlPlane"))
        for config in data.get("resources") or []:
            if isinstance(config, dict):
                result.facts.append(_client_config(doc.source, lines, config, istiod))
    return result


def _control_plane_id(control_plane: Any) -> str | None:
    identifier = control_plane.get("identifier") if isinstance(control_plane, dict) else None
    if not isinstance(identifier, str):
        return None
    try:
        parsed = json.loads(identifier)
    except json.JSONDecodeError:
        return identifier
    return str(parsed.get("ID")) if isinstance(parsed, dict) and parsed.get("ID") else identifier


def _client_config(source: str, lines: list[str], config: dict, istiod: str | None) -> ProxySyncStatus:
    node = config.get("node") if isinstance(config.get("node"), dict) else {}
    metadata = node.get("metadata") if isinstance(node.get("metadata"), dict) else {}
    sync: dict[str, str] = {}
    for xds in config.get("genericXdsConfigs") or config.get("generic_xds_configs") or []:
        if not isinstance(xds, dict):
            continue
        type_url = str(xds.get("typeUrl") or xds.get("type_url") or "")
        short = _TYPE_URLS.get(type_url.rsplit("/", 1)[-1])
        status = xds.get("configStatus") or xds.get("config_status")
        if short and status:
            sync[short] = str(status).replace("_", " ")
    line = key_line(node, "id") or node_line(config)
    return ProxySyncStatus(
        source=source,
        line=line,
        text=lines[line - 1].strip() if line and 0 < line <= len(lines) else "",
        proxy=str(node.get("id", "")),
        cluster=metadata.get("CLUSTER_ID"),
        istiod=istiod,
        version=metadata.get("ISTIO_VERSION"),
        sync=sync,
    )


def _is_analyze(data: Any) -> bool:
    return isinstance(data, list) and (not data or all(
        isinstance(item, dict) and "code" in item and "message" in item for item in data))


def _parse_analyze(doc: Document, lines: list[str]) -> ParseResult:
    result, documents = envoy_admin.load_json_result(doc, KIND_ANALYZE)
    for loaded in documents:
        for item in loaded.data if isinstance(loaded.data, list) else []:
            if not isinstance(item, dict):
                continue
            line = key_line(item, "code") or node_line(item)
            result.facts.append(AnalyzeMessage(
                source=doc.source,
                line=line,
                text=lines[line - 1].strip() if line and 0 < line <= len(lines) else "",
                code=str(item.get("code", "")),
                level=item.get("level"),
                message=str(item.get("message", "")),
                origin=item.get("origin"),
                reference=item.get("reference"),
                documentation_url=item.get("documentationUrl"),
            ))
    return result


def _is_cluster_list(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and all(
        isinstance(item, dict) and "name" in item and any(
            key in item for key in ("type", "edsClusterConfig", "connectTimeout", "eds_cluster_config",
                                    "connect_timeout", "clusterType", "cluster_type"))
        for item in data)


def _parse_cluster_list(doc: Document, lines: list[str]) -> ParseResult:
    result, documents = envoy_admin.load_json_result(doc, KIND_CLUSTERS)
    for loaded in documents:
        result.facts.extend(envoy_admin.extract_clusters(loaded.data, doc.source, lines))
    return result
