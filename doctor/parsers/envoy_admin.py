"""Envoy admin outputs: /stats, /stats/prometheus, /certs, /clusters and /config_dump.

Each output has its own reader kind, chosen by content:

- `/stats` text (`name: value`, histogram lines `name: P0(a,b) P25(...)` or
  `No recorded values`) and `/stats/prometheus` give `EnvoyStat` and
  `EnvoyHistogram` facts;
- `/certs` JSON gives `EnvoyCertificate` facts;
- `/clusters` text (`cluster::host::stat::value`, `cluster::default_priority::
  max_connections::N`) and `/clusters?format=json` give `ClusterStatus` and
  `ClusterHost` facts;
- `/config_dump` JSON or YAML (as `istioctl proxy-config all -o yaml` prints
  it, excerpts of it, and bootstrap-style fragments) gives typed facts for
  listeners, clusters, jwt_authn providers, RBAC filters, local rate limits
  and secrets, with certificate dates decoded from inline PEM.

Keys are read in snake_case and in camelCase, because Envoy prints the
former and `istioctl proxy-config ... -o json|yaml` re-marshals to the latter.
The config extraction (`extract_config_facts`) is public so Istio
EnvoyFilter patches can be read by the same code.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from doctor.model import Document, ParseProblem, ParseResult
from doctor.parsers.structured import LineDict, LoadedDocument, key_line, load_json_documents, node_line

logger = logging.getLogger(__name__)

KIND_STATS = "envoy-stats"
KIND_CERTS = "envoy-certs"
KIND_CLUSTERS = "envoy-clusters"
KIND_CONFIG_DUMP = "envoy-config-dump"
KINDS = (KIND_STATS, KIND_CERTS, KIND_CLUSTERS, KIND_CONFIG_DUMP)
# Reported when parsing fails before the document's kind is known.
KIND = "envoy-admin"


# --- facts ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EnvoyStat:
    """One counter or gauge. `labels` is filled for /stats/prometheus lines only."""

    source: str
    line: int
    text: str
    name: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)
    stat_type: str | None = None  # "counter", "gauge" or "untyped" from a Prometheus TYPE line


@dataclass(frozen=True)
class EnvoyHistogram:
    """One /stats histogram: quantile name ("P50") to (interval, cumulative) values in its unit.

    A value Envoy prints as `nan` is None; `recorded` is False for `No recorded values`.
    """

    source: str
    line: int
    text: str
    name: str
    quantiles: dict[str, tuple[float | None, float | None]]
    recorded: bool


@dataclass(frozen=True)
class EnvoyCertificate:
    """One certificate from /certs. `is_ca` is True for `ca_cert` entries."""

    source: str
    line: int | None
    text: str
    path: str | None
    serial_number: str | None
    subject_alt_names: tuple[str, ...]
    valid_from: datetime | None
    expiration_time: datetime | None
    days_until_expiration: int | None
    is_ca: bool


@dataclass(frozen=True)
class CircuitBreakerThreshold:
    priority: str  # "default_priority"/"high_priority" from /clusters, "DEFAULT"/"HIGH" from config
    max_connections: int | None
    max_pending_requests: int | None
    max_requests: int | None
    max_retries: int | None
    line: int | None
    text: str


@dataclass(frozen=True)
class ClusterStatus:
    """A cluster as /clusters shows it: its circuit breaker thresholds and whether xDS added it."""

    source: str
    line: int
    text: str
    name: str
    observability_name: str | None
    added_via_api: bool | None
    thresholds: tuple[CircuitBreakerThreshold, ...]


@dataclass(frozen=True)
class ClusterHost:
    """One upstream host of a cluster in /clusters with its counters and health flags.

    `line` and `text` are those of the host's `health_flags` line when the
    text format has one, else the host's first line. `stat_lines` maps each
    stat name to its line. `health_flags` is ("healthy",) or the failure
    flags Envoy prints (`/failed_outlier_check`, `/failed_active_hc`, ...),
    without the slashes; for JSON input the flags come from `health_status`.
    """

    source: str
    line: int
    text: str
    cluster: str
    address: str
    health_flags: tuple[str, ...]
    stats: dict[str, int]
    stat_lines: dict[str, int]
    weight: int | None
    hostname: str | None

    @property
    def healthy(self) -> bool:
        return self.health_flags in ((), ("healthy",))


@dataclass(frozen=True)
class FilterChainInfo:
    name: str | None
    line: int | None
    text: str
    transport_protocol: str | None
    server_names: tuple[str, ...]
    application_protocols: tuple[str, ...]
    destination_port: int | None
    has_tls: bool
    require_client_certificate: bool | None
    certificate_secrets: tuple[str, ...]
    network_filters: tuple[str, ...]
    http_filters: tuple[str, ...]


@dataclass(frozen=True)
class EnvoyListener:
    source: str
    line: int | None
    text: str
    name: str
    address: str | None
    state: str  # "static", "active", "warming" or "draining"
    filter_chains: tuple[FilterChainInfo, ...]


@dataclass(frozen=True)
class EnvoyCluster:
    """A cluster from a config dump, bootstrap or `istioctl proxy-config cluster -o json`.

    `has_tls` is True when the cluster has a TLS transport socket, directly or
    in a transport socket match. `sni`, `certificate_secrets`,
    `validation_secret` and `san_matchers` come from its UpstreamTlsContext.
    """

    source: str
    line: int | None
    text: str
    name: str
    state: str
    cluster_type: str | None
    has_tls: bool
    transport_socket: str | None
    sni: str | None
    certificate_secrets: tuple[str, ...]
    validation_secret: str | None
    san_matchers: tuple[str, ...]
    alpn_protocols: tuple[str, ...]
    thresholds: tuple[CircuitBreakerThreshold, ...]
    outlier_detection: dict[str, Any]
    endpoints: tuple[str, ...]
    connect_timeout_s: float | None


@dataclass(frozen=True)
class JwtProvider:
    """One jwt_authn provider. `local_jwks_kids` lists the key ids of an inline JWKS.

    `local_jwks_error` is the reason an inline JWKS could not be read
    (invalid JSON, no keys). `allow_missing` is True when a rule of the same filter
    lets requests without a token through (`allow_missing` or
    `allow_missing_or_failed`).
    """

    source: str
    line: int | None
    text: str
    name: str
    issuer: str | None
    audiences: tuple[str, ...]
    remote_jwks_uri: str | None
    remote_jwks_cluster: str | None
    remote_jwks_line: int | None
    has_local_jwks: bool
    local_jwks_kids: tuple[str, ...]
    local_jwks_error: str | None
    forward: bool | None
    from_headers: tuple[str, ...]
    allow_missing: bool
    listener: str | None


@dataclass(frozen=True)
class RbacPolicy:
    """One named policy of an RBAC filter, with its matchers flattened to readable strings.

    `peer_principals` contains (match type, value) pairs for the peer identity
    matchers (`authenticated.principal_name` and Istio's `io.istio.peer_principal`
    filter state): match type is "exact", "prefix", "suffix", "contains" or
    "regex". `any_principal` is True when a principal entry matches anyone.
    """

    name: str
    line: int | None
    text: str
    principals: tuple[str, ...]
    permissions: tuple[str, ...]
    peer_principals: tuple[tuple[str, str], ...]
    any_principal: bool


@dataclass(frozen=True)
class RbacFilter:
    """An RBAC filter (HTTP or network, or a per-route override).

    `action` and `policies` are the enforced rules, None and empty when the
    filter has only shadow rules. `shadow_action` and `shadow_policies` are
    the shadow rules: they only count in stats under
    `shadow_rules_stat_prefix`, as Istio's dry-run policies do.
    """

    source: str
    line: int | None
    text: str
    filter_name: str | None
    action: str | None
    policies: tuple[RbacPolicy, ...]
    shadow_action: str | None
    shadow_policies: tuple[RbacPolicy, ...]
    shadow_rules_stat_prefix: str | None
    scope: str  # "filter" or "route"
    route: str | None
    listener: str | None


@dataclass(frozen=True)
class RateLimitDescriptor:
    entries: tuple[tuple[str, str], ...]
    max_tokens: int | None
    tokens_per_fill: int | None
    fill_interval_s: float | None
    line: int | None
    text: str


@dataclass(frozen=True)
class LocalRateLimit:
    """A local_ratelimit config, at filter level or per route.

    `filter_enabled_percent` and `filter_enforced_percent` are None when not
    set; Envoy then treats them as 0 %, so a filter-level config without them
    limits nothing unless a route enables it. A config that is enabled but
    not enforced runs in shadow mode: it counts `rate_limited` but lets the
    request through. `descriptor_actions` are the route's `rate_limits`
    actions that produce descriptor entries. `always_consume_default_token_bucket`
    is None when not set (Envoy's default is true, so a request that matches
    a descriptor also takes a token from the default bucket).
    """

    source: str
    line: int | None
    text: str
    stat_prefix: str | None
    scope: str  # "filter", "route" or "network"
    route: str | None
    max_tokens: int | None
    tokens_per_fill: int | None
    fill_interval_s: float | None
    filter_enabled_percent: float | None
    filter_enforced_percent: float | None
    descriptors: tuple[RateLimitDescriptor, ...]
    descriptor_actions: tuple[str, ...]
    always_consume_default_token_bucket: bool | None
    listener: str | None

    @property
    def enabled_percent(self) -> float:
        return self.filter_enabled_percent or 0.0

    @property
    def enforced_percent(self) -> float:
        return self.filter_enforced_percent or 0.0

    @property
    def shadow_mode(self) -> bool:
        """True when requests are checked against the bucket but never rejected."""
        return self.enabled_percent > 0 and self.enforced_percent == 0


@dataclass(frozen=True)
class CertificateSummary:
    """The fields of a PEM certificate, never its key. `trust_domain` names a SPIFFE bundle."""

    subject: str
    issuer: str
    serial_number: str
    not_before: datetime
    not_after: datetime
    subject_alt_names: tuple[str, ...]
    is_ca: bool
    trust_domain: str | None = None


@dataclass(frozen=True)
class EnvoySecret:
    """An SDS or static secret from the config dump.

    `state` is "static", "active" or "warming"; a warming secret was
    requested but never supplied. `secret_type` is "tls_certificate",
    "validation_context", "session_ticket_keys" or None when the secret has
    no content (as warming secrets do). `decode_error` is the reason an
    inline certificate could not be read.
    """

    source: str
    line: int | None
    text: str
    name: str
    state: str
    secret_type: str | None
    version_info: str | None
    last_updated: str | None
    certificates: tuple[CertificateSummary, ...]
    decode_error: str | None = None


# --- sniffing ---------------------------------------------------------------------------------

_STAT_LINE = re.compile(r"^(?P<name>[^\s:][^\s]*?): (?P<value>.*)$")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$")
_QUANTILE = re.compile(r"(P[\d.]+)\(([^,()]+),([^,()]+)\)")
_PROMETHEUS_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\d+)?$")
_PROMETHEUS_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_CLUSTERS_LINE = re.compile(r"^[^\s:]+(?:::[^\n]*)$")
_ADMIN_DUMP = re.compile(r"envoy\.admin\.v[23]|envoy\.admin\.v2alpha")
_CONFIG_MARKERS = (
    "typed_config", "typedConfig", "remote_jwks", "remoteJwks", "local_jwks", "localJwks",
    "token_bucket", "tokenBucket", "transport_socket", "transportSocket", "filter_chains",
    "filterChains", "load_assignment", "loadAssignment", "dynamic_active_secrets",
    "dynamic_warming_secrets", "static_resources",
)


def detect_kind(doc: Document) -> str | None:
    """Return which admin output the document is, or None."""
    text = doc.text
    stripped = text.lstrip()
    head = stripped[:4096]

    if stripped.startswith("{"):
        if re.search(r'"certificates"\s*:', head) and ('"cert_chain"' in text or '"ca_cert"' in text
                                                      or re.search(r'"certificates"\s*:\s*\[\s*\]', head)):
            return KIND_CERTS
        if re.search(r'"cluster_statuses"\s*:', head):
            return KIND_CLUSTERS
    if _ADMIN_DUMP.search(head):
        return KIND_CONFIG_DUMP

    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    if _looks_like_prometheus(lines):
        return KIND_STATS
    if _looks_like_stats(lines):
        return KIND_STATS
    if _looks_like_clusters(lines):
        return KIND_CLUSTERS

    if any(marker in text for marker in _CONFIG_MARKERS):
        documents, _ = load_json_documents(text)
        for loaded in documents:
            if extract_config_facts(loaded.data, doc.source, text.splitlines()):
                return KIND_CONFIG_DUMP
    return None


def _looks_like_prometheus(lines: list[str]) -> bool:
    has_envoy_type = any(line.startswith("# TYPE envoy_") for line in lines[:200])
    if not has_envoy_type:
        return False
    samples = [line for line in lines[:500] if not line.startswith("#")]
    matching = sum(1 for line in samples if _PROMETHEUS_SAMPLE.match(line))
    return bool(samples) and matching >= 0.9 * len(samples)


def _looks_like_stats(lines: list[str]) -> bool:
    sample = lines[:500]
    if len(sample) < 3:
        return False
    matching = 0
    dotted = 0
    for line in sample:
        match = _STAT_LINE.match(line)
        if match is None:
            continue
        value = match.group("value").strip()
        if _NUMBER.match(value) or value == "No recorded values" or value.startswith("P0("):
            matching += 1
            dotted += "." in match.group("name")
    return matching >= 0.9 * len(sample) and dotted >= 0.5 * matching


def _looks_like_clusters(lines: list[str]) -> bool:
    sample = lines[:500]
    if len(sample) < 2:
        return False
    matching = sum(1 for line in sample if "::" in line and _CLUSTERS_LINE.match(line))
    return matching >= 0.9 * len(sample)


def sniff(doc: Document) -> bool:
    return detect_kind(doc) is not None


def parse(doc: Document) -> ParseResult:
    kind = detect_kind(doc)
    if kind == KIND_STATS:
        return _parse_stats(doc)
    if kind == KIND_CERTS:
        return _parse_certs(doc)
    if kind == KIND_CLUSTERS:
        return _parse_clusters(doc)
    if kind == KIND_CONFIG_DUMP:
        return _parse_config_dump(doc)
    return ParseResult(KIND, problems=[ParseProblem(
        doc.source, None, "not a recognised Envoy admin output (/stats, /certs, /clusters or "
                          "/config_dump)")])


# --- small helpers ----------------------------------------------------------------------------

def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _get(mapping: Any, key: str, default: Any = None) -> Any:
    """Read `key` in snake_case or its camelCase form."""
    if not isinstance(mapping, dict):
        return default
    if key in mapping:
        return mapping[key]
    return mapping.get(_camel(key), default)


def _key_line(mapping: Any, key: str) -> int | None:
    return key_line(mapping, key) or key_line(mapping, _camel(key))


def _text(lines: list[str], line: int | None) -> str:
    if line is None or not 0 < line <= len(lines):
        return ""
    return lines[line - 1].strip()


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _duration_seconds(value: Any) -> float | None:
    """Read a protobuf JSON duration ("40s", "0.250s") or {seconds, nanos}."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s\s*", value)
        return float(match.group(1)) if match else None
    if isinstance(value, dict):
        seconds = _int(value.get("seconds")) or 0
        nanos = _int(value.get("nanos")) or 0
        return seconds + nanos / 1e9
    return None


_DENOMINATORS = {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}


def _fractional_percent(value: Any) -> float | None:
    """Read a RuntimeFractionalPercent or FractionalPercent as a percentage."""
    if not isinstance(value, dict):
        return None
    default = _get(value, "default_value", value)
    if not isinstance(default, dict):
        return None
    numerator = _int(default.get("numerator")) or 0
    denominator = _DENOMINATORS.get(str(default.get("denominator", "HUNDRED")).upper(), 100)
    return numerator * 100.0 / denominator


def _unwrap_typed(config: Any) -> tuple[str | None, Any]:
    """Return (type URL, body) of a typed_config, unwrapping udpa/xds TypedStruct."""
    if not isinstance(config, dict):
        return None, config
    type_url = config.get("@type")
    if isinstance(type_url, str) and type_url.endswith("TypedStruct"):
        inner_type = _get(config, "type_url")
        value = config.get("value")
        return (inner_type if isinstance(inner_type, str) else None), value
    return (type_url if isinstance(type_url, str) else None), config


def _filter_kind(name: Any, type_url: str | None) -> str | None:
    text = f"{name or ''} {type_url or ''}".lower()
    if "jwt_authn" in text:
        return "jwt_authn"
    if "local_ratelimit" in text:
        return "local_ratelimit"
    if any(marker in text for marker in ("envoy.filters.http.rbac", ".http.rbac.",
                                         "envoy.filters.network.rbac", ".network.rbac.")):
        return "rbac"
    return None


def _socket_address(address: Any) -> str | None:
    socket_address = _get(address, "socket_address")
    if isinstance(socket_address, dict):
        host = socket_address.get("address")
        port = _get(socket_address, "port_value")
        if port is None:
            port = _get(socket_address, "named_port")
        return f"{host}:{port}" if port is not None else str(host)
    pipe = _get(address, "pipe")
    if isinstance(pipe, dict):
        return f"unix:{pipe.get('path')}"
    envoy_internal = _get(address, "envoy_internal_address")
    if isinstance(envoy_internal, dict):
        return f"internal:{_get(envoy_internal, 'server_listener_name')}"
    return None


def _string_matcher(matcher: Any) -> tuple[str, str] | None:
    if not isinstance(matcher, dict):
        return None
    for kind in ("exact", "prefix", "suffix", "contains"):
        if kind in matcher:
            return kind, str(matcher[kind])
    regex = _get(matcher, "safe_regex")
    if isinstance(regex, dict):
        return "regex", str(regex.get("regex", ""))
    return None


def _describe_matcher(matcher: Any) -> str:
    pair = _string_matcher(matcher)
    return f"{pair[0]}:{pair[1]}" if pair else json.dumps(matcher, default=str, sort_keys=True)


# --- /stats -----------------------------------------------------------------------------------

def _parse_stats(doc: Document) -> ParseResult:
    result = ParseResult(KIND_STATS)
    types: dict[str, str] = {}
    for number, line in enumerate(doc.text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            parts = stripped.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue

        sample = _PROMETHEUS_SAMPLE.match(stripped)
        if sample and ": " not in stripped:
            value = _float(sample.group("value"))
            if value is None:
                result.problems.append(ParseProblem(doc.source, number, f"invalid sample value in {stripped!r}"))
                continue
            labels = dict(_PROMETHEUS_LABEL.findall(sample.group("labels") or ""))
            name = sample.group("name")
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            result.facts.append(EnvoyStat(doc.source, number, stripped, name, value, labels,
                                          types.get(name) or types.get(family)))
            continue

        match = _STAT_LINE.match(stripped)
        if match is None:
            result.problems.append(ParseProblem(doc.source, number, f"not a stat line: {stripped[:120]!r}"))
            continue
        name, value_text = match.group("name"), match.group("value").strip()
        if value_text == "No recorded values":
            result.facts.append(EnvoyHistogram(doc.source, number, stripped, name, {}, False))
            continue
        if value_text.startswith("P0("):
            quantiles = {
                quantile: (_float(interval), _float(cumulative))
                for quantile, interval, cumulative in _QUANTILE.findall(value_text)
            }
            result.facts.append(EnvoyHistogram(doc.source, number, stripped, name, quantiles, True))
            continue
        value = _float(value_text)
        if value is None:
            # Text readouts such as `...version_text: ""` carry no number.
            logger.debug("skipping text stat %s at %s:%d", name, doc.source, number)
            continue
        result.facts.append(EnvoyStat(doc.source, number, stripped, name, value))
    return result


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def load_json_result(doc: Document, kind: str) -> tuple[ParseResult, list[LoadedDocument]]:
    """Load the JSON or YAML documents of `doc` and start a result of `kind` with the load errors."""
    result = ParseResult(kind)
    documents, errors = load_json_documents(doc.text)
    for error in errors:
        result.problems.append(ParseProblem(doc.source, error.line, error.message))
    return result, documents


# --- /certs -----------------------------------------------------------------------------------

def _parse_certs(doc: Document) -> ParseResult:
    result, documents = load_json_result(doc, KIND_CERTS)
    lines = doc.text.splitlines()
    for loaded in documents:
        for group in _get(loaded.data, "certificates") or []:
            for key, is_ca in (("ca_cert", True), ("cert_chain", False)):
                for entry in _get(group, key) or []:
                    if isinstance(entry, dict):
                        result.facts.append(_certificate_entry(doc.source, lines, entry, is_ca))
    return result


def _certificate_entry(source: str, lines: list[str], entry: LineDict, is_ca: bool) -> EnvoyCertificate:
    sans = []
    for san in _get(entry, "subject_alt_names") or []:
        if isinstance(san, dict):
            sans.extend(f"{kind}:{value}" if kind != "uri" else str(value) for kind, value in san.items())
    line = _key_line(entry, "serial_number") or node_line(entry)
    return EnvoyCertificate(
        source=source,
        line=line,
        text=_text(lines, line),
        path=_get(entry, "path"),
        serial_number=_get(entry, "serial_number"),
        subject_alt_names=tuple(sans),
        valid_from=parse_utc_timestamp(_get(entry, "valid_from")),
        expiration_time=parse_utc_timestamp(_get(entry, "expiration_time")),
        days_until_expiration=_int(_get(entry, "days_until_expiration")),
        is_ca=is_ca,
    )


def parse_utc_timestamp(value: Any) -> datetime | None:
    """Parse an ISO 8601 time, taking one without a zone as UTC. Return None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# --- /clusters --------------------------------------------------------------------------------

_CLUSTER_SETTINGS = ("observability_name", "added_via_api", "outlier", "default_priority",
                     "high_priority", "eds_service_name")


def _parse_clusters(doc: Document) -> ParseResult:
    if doc.text.lstrip().startswith("{"):
        return _parse_clusters_json(doc)

    result = ParseResult(KIND_CLUSTERS)
    clusters: dict[str, dict[str, Any]] = {}
    hosts: dict[tuple[str, str], dict[str, Any]] = {}
    for number, line in enumerate(doc.text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        parsed = _split_clusters_line(stripped)
        if parsed is None:
            result.problems.append(ParseProblem(doc.source, number, f"not a /clusters line: {stripped[:120]!r}"))
            continue
        cluster, first, rest = parsed
        info = clusters.setdefault(cluster, {"line": number, "text": stripped, "thresholds": {}})

        if first in _CLUSTER_SETTINGS:
            if first == "observability_name":
                info["observability_name"] = rest[0] if rest else ""
            elif first == "added_via_api":
                info["added_via_api"] = rest[0] == "true" if rest else None
            elif first in ("default_priority", "high_priority") and len(rest) == 2:
                threshold = info["thresholds"].setdefault(first, {"line": number, "text": stripped})
                threshold[rest[0]] = _int(rest[1])
            continue

        if len(rest) != 2:
            result.problems.append(ParseProblem(doc.source, number, f"not a /clusters line: {stripped[:120]!r}"))
            continue
        stat, value = rest
        host = hosts.setdefault((cluster, first), {
            "line": number, "text": stripped, "stats": {}, "stat_lines": {}, "flags": (),
            "weight": None, "hostname": None})
        host["stat_lines"][stat] = number
        if stat == "health_flags":
            host["flags"] = tuple(flag for flag in value.split("/") if flag) or ("healthy",)
            host["line"], host["text"] = number, stripped
        elif stat == "weight":
            host["weight"] = _int(value)
        elif stat == "hostname":
            host["hostname"] = value or None
        elif _int(value) is not None:
            host["stats"][stat] = _int(value)

    for name, info in clusters.items():
        thresholds = tuple(
            CircuitBreakerThreshold(priority, values.get("max_connections"), values.get("max_pending_requests"),
                                    values.get("max_requests"), values.get("max_retries"),
                                    values["line"], values["text"])
            for priority, values in info["thresholds"].items())
        result.facts.append(ClusterStatus(doc.source, info["line"], info["text"], name,
                                          info.get("observability_name"), info.get("added_via_api"),
                                          thresholds))
    for (cluster, address), host in hosts.items():
        result.facts.append(ClusterHost(doc.source, host["line"], host["text"], cluster, address,
                                        host["flags"], host["stats"], host["stat_lines"], host["weight"],
                                        host["hostname"]))
    return result


def _split_clusters_line(line: str) -> tuple[str, str, list[str]] | None:
    """Split `cluster::field::...`, where a host field may be an IPv6 address in brackets."""
    cluster, separator, rest = line.partition("::")
    if not separator or not cluster:
        return None
    if rest.startswith("["):
        closing = rest.find("]")
        end = rest.find("::", closing if closing >= 0 else 0)
        if closing < 0 or end < 0:
            return None
        return cluster, rest[:end], rest[end + 2:].split("::")
    first, _, remainder = rest.partition("::")
    return cluster, first, remainder.split("::") if remainder else []


_HEALTH_STATUS_FLAGS = {
    "failed_active_health_check": "failed_active_hc",
    "failed_outlier_check": "failed_outlier_check",
    "failed_active_degraded_check": "degraded_active_hc",
    "pending_dynamic_removal": "pending_dynamic_removal",
    "pending_active_hc": "pending_active_hc",
    "excluded_via_immediate_hc_fail": "excluded_via_immediate_hc_fail",
    "active_hc_timeout": "active_hc_timeout",
}


def _parse_clusters_json(doc: Document) -> ParseResult:
    result, documents = load_json_result(doc, KIND_CLUSTERS)
    lines = doc.text.splitlines()
    for loaded in documents:
        for status in _get(loaded.data, "cluster_statuses") or []:
            if not isinstance(status, dict):
                continue
            name = str(status.get("name", ""))
            line = _key_line(status, "name") or node_line(status)
            breakers = _get(status, "circuit_breakers") or {}
            thresholds = _thresholds(_get(breakers, "thresholds") or [], lines)
            result.facts.append(ClusterStatus(doc.source, line, _text(lines, line), name,
                                              _get(status, "observability_name"),
                                              _get(status, "added_via_api"), thresholds))
            for host in _get(status, "host_statuses") or []:
                if isinstance(host, dict):
                    result.facts.append(_json_host(doc.source, lines, name, host))
    return result


def _json_host(source: str, lines: list[str], cluster: str, host: LineDict) -> ClusterHost:
    stats: dict[str, int] = {}
    stat_lines: dict[str, int] = {}
    for stat in _get(host, "stats") or []:
        if not isinstance(stat, dict) or "name" not in stat:
            continue
        # Counters at zero have no `value` key in this output.
        stats[str(stat["name"])] = _int(stat.get("value")) or 0
        line = _key_line(stat, "name")
        if line is not None:
            stat_lines[str(stat["name"])] = line

    health = _get(host, "health_status") or {}
    flags = tuple(flag for key, flag in _HEALTH_STATUS_FLAGS.items() if _get(health, key) is True)
    eds = _get(health, "eds_health_status")
    if eds and eds not in ("HEALTHY", "UNKNOWN"):
        flags += (f"eds_{str(eds).lower()}",)
    line = _key_line(host, "health_status") or node_line(host)
    return ClusterHost(
        source=source,
        line=line,
        text=_text(lines, line),
        cluster=cluster,
        address=_socket_address(_get(host, "address")) or "",
        health_flags=flags or ("healthy",),
        stats=stats,
        stat_lines=stat_lines,
        weight=_int(_get(host, "weight")),
        hostname=_get(host, "hostname"),
    )


def _thresholds(items: Iterable[Any], lines: list[str]) -> tuple[CircuitBreakerThreshold, ...]:
    thresholds = []
    for item in items:
        if not isinstance(item, dict):
            continue
        line = next((key_line(item, key) for key in item if key_line(item, key) is not None), node_line(item))
        thresholds.append(CircuitBreakerThreshold(
            priority=str(_get(item, "priority", "DEFAULT")),
            max_connections=_int(_get(item, "max_connections")),
            max_pending_requests=_int(_get(item, "max_pending_requests")),
            max_requests=_int(_get(item, "max_requests")),
            max_retries=_int(_get(item, "max_retries")),
            line=line,
            text=_text(lines, line),
        ))
    return tuple(thresholds)


# --- /config_dump -----------------------------------------------------------------------------

def _parse_config_dump(doc: Document) -> ParseResult:
    result, documents = load_json_result(doc, KIND_CONFIG_DUMP)
    lines = doc.text.splitlines()
    for loaded in documents:
        extractor = _Extractor(doc.source, lines)
        extractor.visit_document(loaded.data)
        result.facts.extend(extractor.facts)
        result.problems.extend(extractor.problems)
    return result


def extract_config_facts(data: Any, source: str, lines: list[str], *,
                         listener: str | None = None, route: str | None = None) -> list[Any]:
    """Return the Envoy config facts found anywhere in `data` (a loaded YAML or JSON tree).

    `listener` and `route` name the context when the caller knows it, as for
    an EnvoyFilter patch.
    """
    extractor = _Extractor(source, lines)
    extractor.visit(data, _Context(listener=listener, route=route))
    return extractor.facts


def extract_clusters(data: Any, source: str, lines: list[str], state: str = "active") -> list[EnvoyCluster]:
    """Return the clusters of a list such as `istioctl proxy-config cluster -o json` prints."""
    extractor = _Extractor(source, lines)
    extractor.visit(data, _Context(parent_key="clusters", cluster_state=state))
    return [fact for fact in extractor.facts if isinstance(fact, EnvoyCluster)]


@dataclass(frozen=True)
class _Context:
    parent_key: str | None = None
    listener: str | None = None
    route: str | None = None
    listener_state: str = "static"
    cluster_state: str = "static"


_LISTENER_STATES = {"active_state": "active", "warming_state": "warming", "draining_state": "draining"}
_CLUSTER_LISTS = {"dynamic_active_clusters": "active", "dynamic_warming_clusters": "warming",
                  "static_clusters": "static", "clusters": "static"}
_SECRET_LISTS = {"static_secrets": "static", "dynamic_active_secrets": "active",
                 "dynamic_warming_secrets": "warming", "secrets": "static"}
_CLUSTER_KEYS = ("connect_timeout", "load_assignment", "eds_cluster_config", "lb_policy", "hosts",
                 "cluster_type", "transport_socket", "circuit_breakers", "outlier_detection",
                 "transport_socket_matches", "alt_stat_name", "dns_lookup_family")


class _Extractor:
    """Walks a loaded config tree and collects typed facts, citing lines where known."""

    def __init__(self, source: str, lines: list[str]) -> None:
        self.source = source
        self.lines = lines
        self.facts: list[Any] = []
        self.problems: list[ParseProblem] = []

    def visit_document(self, data: Any) -> None:
        # A full /config_dump repeats the bootstrap's static resources in the other sections.
        configs = _get(data, "configs")
        if isinstance(configs, list) and any(
                isinstance(item, dict) and not str(item.get("@type", "")).endswith("BootstrapConfigDump")
                for item in configs):
            for item in configs:
                if isinstance(item, dict) and str(item.get("@type", "")).endswith("BootstrapConfigDump"):
                    continue
                self.visit(item, _Context())
            return
        self.visit(data, _Context())

    def visit(self, value: Any, context: _Context) -> None:
        if isinstance(value, list):
            for item in value:
                self.visit(item, context)
            return
        if not isinstance(value, dict):
            return
        if self._visit_known(value, context):
            return
        for key, child in value.items():
            if key == "static_route_configs":
                # Static route configs are also inline in their listeners, which name the listener.
                continue
            self.visit(child, self._child_context(value, str(key), context))

    def _child_context(self, parent: dict, key: str, context: _Context) -> _Context:
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        state = _LISTENER_STATES.get(snake)
        if state is not None:
            return _Context(snake, context.listener, context.route, state, context.cluster_state)
        if snake in _CLUSTER_LISTS:
            return _Context(snake, context.listener, context.route, context.listener_state,
                            _CLUSTER_LISTS[snake])
        if snake == "static_listeners":
            return _Context(snake, context.listener, context.route, "static", context.cluster_state)
        return _Context(snake, context.listener, context.route, context.listener_state,
                        context.cluster_state)

    def _visit_known(self, value: dict, context: _Context) -> bool:
        """Turn a recognised object into facts, and return True when its children need no visit."""
        parent = context.parent_key
        type_url = str(value.get("@type", ""))

        if parent in _SECRET_LISTS and "name" in value and (
                "secret" in value or parent != "secrets"
                or any(key in value for key in ("tls_certificate", "validation_context"))):
            self._secret(value, _SECRET_LISTS[parent])
            return True

        if self._is_listener(value, parent, type_url):
            listener = self._listener(value, context)
            self.visit(value.get("filter_chains") or value.get("filterChains") or [],
                       _Context("filter_chains", listener.name, None, context.listener_state))
            default_chain = _get(value, "default_filter_chain")
            if default_chain is not None:
                self.visit(default_chain, _Context("default_filter_chain", listener.name, None,
                                                   context.listener_state))
            return True

        if self._is_cluster(value, parent, type_url):
            self._cluster(value, context)
            return True

        if "name" in value and (_get(value, "typed_config") is not None):
            inner_type, body = _unwrap_typed(_get(value, "typed_config"))
            kind = _filter_kind(value.get("name"), inner_type)
            if kind is not None and isinstance(body, dict):
                line = _key_line(value, "name") or node_line(value)
                is_network = "network" in f"{value.get('name')} {inner_type}"
                scope = "network" if kind == "local_ratelimit" and is_network else "filter"
                self._filter_body(kind, body, line, str(value.get("name")), scope, context)
                return True
            return False

        per_filter = _get(value, "typed_per_filter_config")
        if isinstance(per_filter, dict):
            self._per_route(value, per_filter, context)
            for key, child in value.items():
                if key not in ("typed_per_filter_config", "typedPerFilterConfig"):
                    self.visit(child, self._child_context(value, str(key), context))
            return True

        # Bodies without the filter wrapper: excerpts and EnvoyFilter patch values.
        kind = _filter_kind(None, type_url) if type_url else None
        if kind is None:
            kind = self._body_shape(value)
        if kind is not None:
            self._filter_body(kind, value, node_line(value), None, "filter", context)
            return True
        return False

    @staticmethod
    def _body_shape(value: dict) -> str | None:
        providers = value.get("providers")
        if isinstance(providers, dict) and providers and all(
                isinstance(provider, dict) and any(
                    key in provider for key in ("issuer", "remote_jwks", "remoteJwks", "local_jwks", "localJwks"))
                for provider in providers.values()):
            return "jwt_authn"
        if "stat_prefix" in value and ("token_bucket" in value or "descriptors" in value
                                       or "filter_enforced" in value):
            return "local_ratelimit"
        if "statPrefix" in value and ("tokenBucket" in value or "filterEnforced" in value):
            return "local_ratelimit"
        return None

    @staticmethod
    def _is_listener(value: dict, parent: str | None, type_url: str) -> bool:
        if type_url.endswith("config.listener.v3.Listener"):
            return True
        return parent in ("listeners", "listener") and (
            _get(value, "filter_chains") is not None or _get(value, "address") is not None
            or _get(value, "default_filter_chain") is not None)

    @staticmethod
    def _is_cluster(value: dict, parent: str | None, type_url: str) -> bool:
        if type_url.endswith("config.cluster.v3.Cluster"):
            return True
        if parent not in ("clusters", "cluster", "static_clusters"):
            return False
        return "name" in value and any(_get(value, key) is not None for key in _CLUSTER_KEYS + ("type",))

    # -- listeners and clusters --

    def _listener(self, value: dict, context: _Context) -> EnvoyListener:
        name = str(value.get("name", ""))
        line = _key_line(value, "name") or node_line(value)
        chains = []
        for chain in (_get(value, "filter_chains") or []) + ([_get(value, "default_filter_chain")]
                                                            if isinstance(_get(value, "default_filter_chain"), dict) else []):
            if isinstance(chain, dict):
                chains.append(self._filter_chain(chain))
        listener = EnvoyListener(self.source, line, _text(self.lines, line), name,
                                 _socket_address(_get(value, "address")), context.listener_state,
                                 tuple(chains))
        self.facts.append(listener)
        return listener

    def _filter_chain(self, chain: dict) -> FilterChainInfo:
        match = _get(chain, "filter_chain_match") or {}
        socket = _get(chain, "transport_socket")
        _, tls = _unwrap_typed(_get(socket, "typed_config")) if isinstance(socket, dict) else (None, None)
        network_filters = []
        http_filters: list[str] = []
        for network_filter in _get(chain, "filters") or []:
            if not isinstance(network_filter, dict):
                continue
            network_filters.append(str(network_filter.get("name", "")))
            _, body = _unwrap_typed(_get(network_filter, "typed_config"))
            for http_filter in _get(body, "http_filters") or []:
                if isinstance(http_filter, dict):
                    http_filters.append(str(http_filter.get("name", "")))
        require = _get(tls, "require_client_certificate") if isinstance(tls, dict) else None
        line = (_key_line(chain, "name") or _key_line(chain, "filter_chain_match")
                or _key_line(chain, "filters") or node_line(chain))
        return FilterChainInfo(
            name=chain.get("name"),
            line=line,
            text=_text(self.lines, line),
            transport_protocol=_get(match, "transport_protocol"),
            server_names=tuple(str(name) for name in _get(match, "server_names") or []),
            application_protocols=tuple(str(name) for name in _get(match, "application_protocols") or []),
            destination_port=_int(_get(match, "destination_port")),
            has_tls=isinstance(socket, dict) and "tls" in str(socket.get("name", "")),
            require_client_certificate=bool(require) if require is not None else None,
            certificate_secrets=_secret_names(tls),
            network_filters=tuple(network_filters),
            http_filters=tuple(http_filters),
        )

    def _cluster(self, value: dict, context: _Context) -> None:
        name = str(value.get("name", ""))
        line = _key_line(value, "name") or node_line(value)
        socket = _get(value, "transport_socket")
        if not isinstance(socket, dict):
            matches = [match for match in _get(value, "transport_socket_matches") or []
                       if isinstance(match, dict) and isinstance(_get(match, "transport_socket"), dict)]
            tls_matches = [match for match in matches if "tls" in str(_get(match, "transport_socket").get("name", ""))]
            socket = _get(tls_matches[0], "transport_socket") if tls_matches else None
        _, tls = _unwrap_typed(_get(socket, "typed_config")) if isinstance(socket, dict) else (None, None)
        # Istio wraps TLS in an internal_upstream or tcp_stats socket, so look one level in.
        if isinstance(tls, dict) and _get(tls, "transport_socket") is not None and not _get(tls, "common_tls_context"):
            inner = _get(tls, "transport_socket")
            socket = inner if isinstance(inner, dict) else socket
            _, tls = _unwrap_typed(_get(inner, "typed_config"))
        socket_name = str(socket.get("name")) if isinstance(socket, dict) and socket.get("name") else None
        has_tls = bool(socket_name and "tls" in socket_name) or (
            isinstance(tls, dict) and _get(tls, "common_tls_context") is not None)
        common = _get(tls, "common_tls_context") or {}
        endpoints = []
        assignment = _get(value, "load_assignment") or {}
        for group in _get(assignment, "endpoints") or []:
            for endpoint in _get(group, "lb_endpoints") or []:
                address = _socket_address(_get(_get(endpoint, "endpoint"), "address"))
                if address:
                    endpoints.append(address)
        for host in _get(value, "hosts") or []:
            address = _socket_address(host)
            if address:
                endpoints.append(address)

        self.facts.append(EnvoyCluster(
            source=self.source,
            line=line,
            text=_text(self.lines, line),
            name=name,
            state=context.cluster_state,
            cluster_type=_get(value, "type") or (_get(_get(value, "cluster_type"), "name")),
            has_tls=has_tls,
            transport_socket=socket_name,
            sni=_get(tls, "sni") if isinstance(tls, dict) else None,
            certificate_secrets=_secret_names(tls),
            validation_secret=_validation_secret(common),
            san_matchers=_san_matchers(common),
            alpn_protocols=tuple(str(item) for item in _get(common, "alpn_protocols") or []),
            thresholds=_thresholds(_get(_get(value, "circuit_breakers"), "thresholds") or [], self.lines),
            outlier_detection=plain_copy(_get(value, "outlier_detection") or {}),
            endpoints=tuple(endpoints),
            connect_timeout_s=_duration_seconds(_get(value, "connect_timeout")),
        ))

    # -- HTTP filters --

    def _filter_body(self, kind: str, body: dict, line: int | None, filter_name: str | None,
                     scope: str, context: _Context) -> None:
        if kind == "jwt_authn":
            self._jwt_providers(body, context)
        elif kind == "rbac":
            self._rbac(body, line, filter_name, scope, context)
        elif kind == "local_ratelimit":
            self._local_ratelimit(body, line, scope, context, ())

    def _per_route(self, route: dict, per_filter: dict, context: _Context) -> None:
        route_name = route.get("name") or context.route
        actions = _rate_limit_actions(route)
        for filter_name, config in per_filter.items():
            inner_type, body = _unwrap_typed(config)
            kind = _filter_kind(filter_name, inner_type)
            if not isinstance(body, dict) or kind is None:
                continue
            line = key_line(per_filter, filter_name) or node_line(body)
            route_context = _Context(context.parent_key, context.listener, route_name,
                                     context.listener_state, context.cluster_state)
            if kind == "local_ratelimit":
                self._local_ratelimit(body, line, "route", route_context, actions)
            elif kind == "rbac":
                rbac = _get(body, "rbac")
                if isinstance(rbac, dict):
                    self._rbac(rbac, line, str(filter_name), "route", route_context)

    def _jwt_providers(self, body: dict, context: _Context) -> None:
        providers = body.get("providers")
        if not isinstance(providers, dict):
            return
        allowed_missing = _allows_missing(body)
        for name, provider in providers.items():
            if not isinstance(provider, dict):
                continue
            line = key_line(providers, name) or node_line(provider)
            remote = _get(provider, "remote_jwks") or {}
            http_uri = _get(remote, "http_uri") or {}
            local = _get(provider, "local_jwks")
            kids, error = _jwks_kids(local)
            self.facts.append(JwtProvider(
                source=self.source,
                line=line,
                text=_text(self.lines, line),
                name=str(name),
                issuer=_get(provider, "issuer"),
                audiences=tuple(str(item) for item in _get(provider, "audiences") or []),
                remote_jwks_uri=_get(http_uri, "uri"),
                remote_jwks_cluster=_get(http_uri, "cluster"),
                remote_jwks_line=_key_line(http_uri, "uri") or _key_line(provider, "remote_jwks"),
                has_local_jwks=isinstance(local, dict),
                local_jwks_kids=kids,
                local_jwks_error=error,
                forward=_get(provider, "forward"),
                from_headers=tuple(str(_get(header, "name")) for header in _get(provider, "from_headers") or []
                                   if isinstance(header, dict)),
                allow_missing=allowed_missing,
                listener=context.listener,
            ))

    def _rbac(self, body: dict, line: int | None, filter_name: str | None, scope: str,
              context: _Context) -> None:
        rules = _get(body, "rules")
        shadow = _get(body, "shadow_rules")
        if not isinstance(rules, dict) and not isinstance(shadow, dict):
            return
        self.facts.append(RbacFilter(
            source=self.source,
            line=line,
            text=_text(self.lines, line),
            filter_name=filter_name,
            action=str(_get(rules, "action", "ALLOW")) if isinstance(rules, dict) else None,
            policies=self._rbac_policies(rules),
            shadow_action=str(_get(shadow, "action", "ALLOW")) if isinstance(shadow, dict) else None,
            shadow_policies=self._rbac_policies(shadow),
            shadow_rules_stat_prefix=_get(body, "shadow_rules_stat_prefix"),
            scope=scope,
            route=context.route,
            listener=context.listener,
        ))

    def _rbac_policies(self, rules: Any) -> tuple[RbacPolicy, ...]:
        policies = _get(rules, "policies")
        if not isinstance(policies, dict):
            return ()
        result = []
        for name, policy in policies.items():
            if not isinstance(policy, dict):
                continue
            line = key_line(policies, name) or node_line(policy)
            principals: list[str] = []
            peers: list[tuple[str, str]] = []
            any_principal = False
            for principal in _get(policy, "principals") or []:
                text, found_any = _describe_principal(principal, peers)
                principals.append(text)
                any_principal = any_principal or found_any
            permissions = [_describe_permission(permission) for permission in _get(policy, "permissions") or []]
            result.append(RbacPolicy(str(name), line, _text(self.lines, line), tuple(principals),
                                     tuple(permissions), tuple(peers), any_principal))
        return tuple(result)

    def _local_ratelimit(self, body: dict, line: int | None, scope: str, context: _Context,
                         actions: tuple[str, ...]) -> None:
        bucket = _get(body, "token_bucket") or {}
        descriptors = []
        for descriptor in _get(body, "descriptors") or []:
            if not isinstance(descriptor, dict):
                continue
            entries = tuple((str(_get(entry, "key")), str(_get(entry, "value", "")))
                            for entry in _get(descriptor, "entries") or [] if isinstance(entry, dict))
            descriptor_bucket = _get(descriptor, "token_bucket") or {}
            descriptor_line = _descriptor_value_line(descriptor) or node_line(descriptor)
            descriptors.append(RateLimitDescriptor(
                entries=entries,
                max_tokens=_int(_get(descriptor_bucket, "max_tokens")),
                tokens_per_fill=_int(_get(descriptor_bucket, "tokens_per_fill", 1)),
                fill_interval_s=_duration_seconds(_get(descriptor_bucket, "fill_interval")),
                line=descriptor_line,
                text=_text(self.lines, descriptor_line),
            ))
        has_bucket = isinstance(bucket, dict) and bool(bucket)
        always_consume = _get(body, "always_consume_default_token_bucket")
        self.facts.append(LocalRateLimit(
            source=self.source,
            line=line,
            text=_text(self.lines, line),
            stat_prefix=_get(body, "stat_prefix"),
            scope=scope,
            route=context.route,
            max_tokens=_int(_get(bucket, "max_tokens")) if has_bucket else None,
            tokens_per_fill=_int(_get(bucket, "tokens_per_fill", 1)) if has_bucket else None,
            fill_interval_s=_duration_seconds(_get(bucket, "fill_interval")) if has_bucket else None,
            filter_enabled_percent=_fractional_percent(_get(body, "filter_enabled")),
            filter_enforced_percent=_fractional_percent(_get(body, "filter_enforced")),
            descriptors=tuple(descriptors),
            descriptor_actions=actions,
            always_consume_default_token_bucket=always_consume if isinstance(always_consume, bool) else None,
            listener=context.listener,
        ))

    # -- secrets --

    def _secret(self, entry: dict, state: str) -> None:
        secret = entry.get("secret") if isinstance(entry.get("secret"), dict) else entry
        name = str(entry.get("name") or _get(secret, "name") or "")
        line = _key_line(entry, "name") or node_line(entry)
        secret_type = None
        for candidate in ("tls_certificate", "validation_context", "session_ticket_keys",
                          "generic_secret"):
            if _get(secret, candidate) is not None:
                secret_type = candidate
                break

        certificates: list[CertificateSummary] = []
        errors: list[str] = []
        if secret_type == "tls_certificate":
            _decode_into(_get(_get(secret, "tls_certificate"), "certificate_chain"), None, certificates, errors)
        elif secret_type == "validation_context":
            context = _get(secret, "validation_context")
            _decode_into(_get(context, "trusted_ca"), None, certificates, errors)
            validator = _get(context, "custom_validator_config") or {}
            _, validator_config = _unwrap_typed(_get(validator, "typed_config"))
            for domain in _get(validator_config, "trust_domains") or []:
                if isinstance(domain, dict):
                    _decode_into(_get(domain, "trust_bundle"), str(domain.get("name")), certificates, errors)
        if errors:
            self.problems.append(ParseProblem(self.source, line, f"secret {name}: {'; '.join(errors)}"))

        self.facts.append(EnvoySecret(
            source=self.source,
            line=line,
            text=_text(self.lines, line),
            name=name,
            state=state,
            secret_type=secret_type,
            version_info=_get(entry, "version_info"),
            last_updated=_get(entry, "last_updated"),
            certificates=tuple(certificates),
            decode_error="; ".join(errors) or None,
        ))


def _secret_names(tls: Any) -> tuple[str, ...]:
    common = _get(tls, "common_tls_context") or {}
    names = [str(_get(config, "name")) for config in _get(common, "tls_certificate_sds_secret_configs") or []
             if isinstance(config, dict)]
    if _get(common, "tls_certificates"):
        names.append("(inline)")
    return tuple(names)


def _validation_secret(common: Any) -> str | None:
    config = _get(common, "validation_context_sds_secret_config")
    if isinstance(config, dict):
        return _get(config, "name")
    combined = _get(common, "combined_validation_context")
    config = _get(combined, "validation_context_sds_secret_config")
    return _get(config, "name") if isinstance(config, dict) else None


def _san_matchers(common: Any) -> tuple[str, ...]:
    contexts = [_get(common, "validation_context"),
                _get(_get(common, "combined_validation_context"), "default_validation_context")]
    matchers = []
    for context in contexts:
        for item in _get(context, "match_typed_subject_alt_names") or []:
            matchers.append(_describe_matcher(_get(item, "matcher")))
        for item in _get(context, "match_subject_alt_names") or []:
            matchers.append(_describe_matcher(item))
    return tuple(matchers)


def _allows_missing(body: dict) -> bool:
    text = json.dumps(plain_copy(body.get("rules") or []), default=str)
    return "allow_missing" in text or "allowMissing" in text


def _jwks_kids(local: Any) -> tuple[tuple[str, ...], str | None]:
    if not isinstance(local, dict):
        return (), None
    inline = _get(local, "inline_string")
    if inline is None and _get(local, "inline_bytes") is not None:
        try:
            inline = base64.b64decode(_get(local, "inline_bytes")).decode()
        except (ValueError, UnicodeDecodeError):
            return (), "local_jwks inline_bytes is not base64 text"
    if inline is None:
        return (), None
    try:
        jwks = json.loads(inline)
    except json.JSONDecodeError as error:
        return (), f"local_jwks is not valid JSON: {error.msg}"
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        return (), "local_jwks has no keys"
    return tuple(str(key.get("kid")) for key in keys if isinstance(key, dict) and key.get("kid")), None


def _rate_limit_actions(route: dict) -> tuple[str, ...]:
    limits = list(_get(_get(route, "route"), "rate_limits") or []) + list(_get(route, "rate_limits") or [])
    described = []
    for limit in limits:
        for action in _get(limit, "actions") or []:
            if not isinstance(action, dict):
                continue
            for name, config in action.items():
                if name in ("request_headers", "requestHeaders") and isinstance(config, dict):
                    described.append(f"request_headers {_get(config, 'header_name')} -> "
                                     f"{_get(config, 'descriptor_key')}")
                elif name in ("generic_key", "genericKey") and isinstance(config, dict):
                    described.append(f"generic_key {_get(config, 'descriptor_key', 'generic_key')}="
                                     f"{_get(config, 'descriptor_value')}")
                else:
                    described.append(re.sub(r"(?<!^)(?=[A-Z])", "_", str(name)).lower())
    return tuple(described)


def _descriptor_value_line(descriptor: dict) -> int | None:
    for entry in _get(descriptor, "entries") or []:
        line = key_line(entry, "value")
        if line is not None:
            return line
    return None


def _describe_principal(principal: Any, peers: list[tuple[str, str]]) -> tuple[str, bool]:
    """Describe an RBAC principal and collect its peer identity matchers into `peers`."""
    if not isinstance(principal, dict):
        return str(principal), False
    if principal.get("any") is True:
        return "any", True

    for key in ("and_ids", "or_ids"):
        group = _get(principal, key)
        if isinstance(group, dict):
            parts = [_describe_principal(item, peers) for item in group.get("ids") or []]
            joined = (" and " if key == "and_ids" else " or ").join(text for text, _ in parts)
            found_any = all(item for _, item in parts) if key == "and_ids" else any(item for _, item in parts)
            return f"({joined})", found_any
    negated = _get(principal, "not_id")
    if negated is not None:
        text, _ = _describe_principal(negated, [])
        return f"not {text}", False

    authenticated = principal.get("authenticated")
    if isinstance(authenticated, dict):
        pair = _string_matcher(_get(authenticated, "principal_name"))
        if pair is None:
            return "authenticated (any peer certificate)", False
        peers.append(pair)
        return f"peer principal {pair[0]}:{pair[1]}", False
    filter_state = _get(principal, "filter_state")
    if isinstance(filter_state, dict):
        pair = _string_matcher(_get(filter_state, "string_match"))
        key = filter_state.get("key")
        if key == "io.istio.peer_principal" and pair is not None:
            peers.append(pair)
            return f"peer principal {pair[0]}:{pair[1]}", False
        return f"filter_state {key} {pair[0] + ':' + pair[1] if pair else ''}".strip(), False

    metadata = principal.get("metadata")
    if isinstance(metadata, dict):
        path = ".".join(str(_get(item, "key")) for item in metadata.get("path") or [] if isinstance(item, dict))
        value = _get(metadata.get("value"), "string_match")
        return f"metadata {metadata.get('filter')}.{path} {_describe_matcher(value)}", False
    for key in ("source_ip", "direct_remote_ip", "remote_ip"):
        cidr = _get(principal, key)
        if isinstance(cidr, dict):
            return f"{key} {_get(cidr, 'address_prefix')}/{_get(cidr, 'prefix_len', 32)}", False
    header = principal.get("header")
    if isinstance(header, dict):
        return f"header {header.get('name')}", False
    return json.dumps(plain_copy(principal), default=str, sort_keys=True), False


def _describe_permission(permission: Any) -> str:
    if not isinstance(permission, dict):
        return str(permission)
    if permission.get("any") is True:
        return "any"
    for key in ("and_rules", "or_rules"):
        group = _get(permission, key)
        if isinstance(group, dict):
            parts = [_describe_permission(item) for item in group.get("rules") or []]
            return "(" + (" and " if key == "and_rules" else " or ").join(parts) + ")"
    negated = _get(permission, "not_rule")
    if negated is not None:
        return f"not {_describe_permission(negated)}"
    url_path = _get(permission, "url_path")
    if isinstance(url_path, dict):
        return f"path {_describe_matcher(url_path.get('path'))}"
    header = permission.get("header")
    if isinstance(header, dict):
        matcher = {key: value for key, value in header.items() if key != "name"}
        return f"header {header.get('name')} {_describe_matcher(_get(matcher, 'string_match', matcher))}"
    port = _get(permission, "destination_port")
    if port is not None:
        return f"port {port}"
    return json.dumps(plain_copy(permission), default=str, sort_keys=True)


def plain_copy(value: Any) -> Any:
    """Copy line-aware containers into plain dicts and lists."""
    if isinstance(value, dict):
        return {key: plain_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_copy(item) for item in value]
    return value


# --- certificates -----------------------------------------------------------------------------

def _decode_into(data_source: Any, trust_domain: str | None, certificates: list[CertificateSummary],
                 errors: list[str]) -> None:
    """Decode the PEM certificates of a DataSource (inline_bytes or inline_string)."""
    if not isinstance(data_source, dict):
        return
    pem: bytes | None = None
    inline_bytes = _get(data_source, "inline_bytes")
    inline_string = _get(data_source, "inline_string")
    if isinstance(inline_bytes, str):
        try:
            pem = base64.b64decode(inline_bytes, validate=False)
        except ValueError:
            errors.append("inline_bytes is not base64")
            return
    elif isinstance(inline_string, str):
        pem = inline_string.encode()
    if not pem or b"BEGIN CERTIFICATE" not in pem:
        return
    try:
        loaded = x509.load_pem_x509_certificates(pem)
    except ValueError as error:
        errors.append(f"invalid PEM certificate: {error}")
        return
    for certificate in loaded:
        certificates.append(summarize_certificate(certificate, trust_domain))


def _serial_hex(serial: int) -> str:
    """Format a serial number as even-length lowercase hex, as istioctl and openssl print it."""
    text = format(serial, "x")
    return text if len(text) % 2 == 0 else "0" + text


def summarize_certificate(certificate: x509.Certificate, trust_domain: str | None = None) -> CertificateSummary:
    sans: list[str] = []
    is_ca = False
    try:
        extension = certificate.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        names = extension.value
        sans.extend(names.get_values_for_type(x509.UniformResourceIdentifier))
        sans.extend(f"DNS:{name}" for name in names.get_values_for_type(x509.DNSName))
        sans.extend(f"IP:{address}" for address in names.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        pass
    try:
        is_ca = certificate.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca
    except x509.ExtensionNotFound:
        pass
    return CertificateSummary(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        serial_number=_serial_hex(certificate.serial_number),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        subject_alt_names=tuple(sans),
        is_ca=is_ca,
        trust_domain=trust_domain,
    )
