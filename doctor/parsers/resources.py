"""Resource usage: `kubectl top pod` tables and Prometheus text exposition.

`kubectl top pod --containers` (columns POD NAME CPU(cores) MEMORY(bytes),
NAMESPACE first with `-A`) and plain `kubectl top pod` (NAME CPU(cores)
MEMORY(bytes)) become `ContainerUsage` facts. Prometheus text exposition,
such as the kubelet's cAdvisor metrics (`container_cpu_cfs_throttled_periods_total`,
`container_memory_working_set_bytes`, ...) or Envoy's `/stats/prometheus`,
becomes one `MetricSample` per sample line. `# HELP` and `# TYPE` lines are
read as metadata and count as read.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

from doctor.model import Document, ParseProblem, ParseResult
from doctor.parsers.kube import parse_cpu_millicores, parse_memory_bytes

logger = logging.getLogger(__name__)

KIND_TOP = "kubectl-top"
KIND_METRICS = "prometheus-metrics"

# cAdvisor metric names the checks read.
CPU_THROTTLED_SECONDS = "container_cpu_cfs_throttled_seconds_total"
CPU_THROTTLED_PERIODS = "container_cpu_cfs_throttled_periods_total"
CPU_PERIODS = "container_cpu_cfs_periods_total"
MEMORY_WORKING_SET = "container_memory_working_set_bytes"


@dataclass(frozen=True)
class ContainerUsage:
    """One row of `kubectl top pod`: usage of a container, or of a whole pod when `container` is None."""

    source: str
    line: int
    text: str
    namespace: str | None
    pod: str
    container: str | None
    cpu_millicores: int | None
    memory_bytes: int | None


@dataclass(frozen=True)
class MetricSample:
    """One sample line of Prometheus text exposition."""

    source: str
    line: int
    text: str
    name: str
    labels: dict[str, str]
    value: float
    timestamp_ms: int | None = None


_TOP_HEADER = re.compile(r"^(?:NAMESPACE\s+)?(?:POD\s+NAME|NAME)\s+CPU\(cores\)\s+MEMORY\(bytes\)\s*$")
_METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(
    rf"^(?P<name>{_METRIC_NAME})(?:\{{(?P<labels>.*)\}})?[ \t]+(?P<value>\S+)(?:[ \t]+(?P<timestamp>-?\d+))?[ \t]*$")
_LABEL = re.compile(r'[ \t]*(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"(?P<value>(?:[^"\\]|\\.)*)"[ \t]*(?:,|$)')
_METADATA = re.compile(rf"^#[ \t]+(?:HELP|TYPE)[ \t]+{_METRIC_NAME}(?:[ \t]|$)")
_SNIFF_LINES = 50


def sniff(doc: Document) -> bool:
    """Return True for a `kubectl top pod` table or Prometheus text exposition."""
    lines = [line for line in doc.text.splitlines()[:_SNIFF_LINES * 4] if line.strip()][:_SNIFF_LINES]
    if not lines:
        return False
    if _TOP_HEADER.match(lines[0].strip()):
        return True
    if any(_METADATA.match(line) for line in lines):
        return True
    # Exposition without HELP/TYPE lines: every sample line must parse.
    return all(_sample_parts(line) is not None for line in lines)


def parse(doc: Document) -> ParseResult:
    first = next((line for line in doc.text.splitlines() if line.strip()), "")
    if _TOP_HEADER.match(first.strip()):
        return _parse_top(doc)
    return _parse_exposition(doc)


def _parse_top(doc: Document) -> ParseResult:
    result = ParseResult(KIND_TOP)
    header: list[str] = []
    for index, line in enumerate(doc.text.splitlines()):
        stripped = line.strip()
        if not stripped:
            continue
        if _TOP_HEADER.match(stripped):
            header = re.sub(r"\bPOD\s+NAME\b", "POD CONTAINER", stripped).split()
            continue
        cells = stripped.split()
        if len(cells) != len(header):
            result.problems.append(ParseProblem(
                doc.source, index + 1, f"expected {len(header)} columns ({' '.join(header)}), found {len(cells)}"))
            continue
        row = dict(zip(header, cells))
        try:
            cpu = parse_cpu_millicores(row["CPU(cores)"])
            memory = parse_memory_bytes(row["MEMORY(bytes)"])
        except ValueError as error:
            result.problems.append(ParseProblem(doc.source, index + 1, str(error)))
            continue
        has_containers = "POD" in row
        result.facts.append(ContainerUsage(
            source=doc.source,
            line=index + 1,
            text=line.rstrip(),
            namespace=row.get("NAMESPACE"),
            pod=row["POD"] if has_containers else row["NAME"],
            container=row["CONTAINER"] if has_containers else None,
            cpu_millicores=cpu,
            memory_bytes=memory,
        ))
    return result


def _parse_exposition(doc: Document) -> ParseResult:
    result = ParseResult(KIND_METRICS)
    for index, line in enumerate(doc.text.splitlines()):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            # HELP, TYPE and other comments carry no samples.
            continue
        parts = _sample_parts(stripped)
        if parts is None:
            result.problems.append(ParseProblem(
                doc.source, index + 1, "not a Prometheus sample line (name{labels} value [timestamp])"))
            continue
        name, labels, value, timestamp = parts
        result.facts.append(MetricSample(doc.source, index + 1, stripped, name, labels, value, timestamp))
    return result


def _sample_parts(line: str) -> tuple[str, dict[str, str], float, int | None] | None:
    match = _SAMPLE.match(line.strip())
    if match is None:
        return None
    labels = _labels(match.group("labels") or "")
    if labels is None:
        return None
    value = _float(match.group("value"))
    if value is None:
        return None
    timestamp = match.group("timestamp")
    return match.group("name"), labels, value, int(timestamp) if timestamp is not None else None


def _labels(text: str) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    position = 0
    text = text.strip()
    while position < len(text):
        match = _LABEL.match(text, position)
        if match is None:
            return None
        labels[match.group("name")] = _unescape(match.group("value"))
        position = match.end()
    return labels


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda match: "\n" if match.group(1) == "n" else match.group(1), value)


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if math.isnan(value) and text.lower() != "nan":
        return None
    return value
