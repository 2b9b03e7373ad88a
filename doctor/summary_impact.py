"""The symptom and the impact of an incident, measured from access-log facts.

Owns which failing entries describe the symptom (codes, flags, details, the
first failing path and the hop from caller to callee) and the impact: failed
requests, the error rate over time and the affected workloads.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from doctor.logscan import is_failure
from doctor.parsers.accesslog import AccessLogEntry
from doctor.parsers.kube import PodInfo
from doctor.summary_values import first_of, iso, last_of, shorten, utc

# Bucket widths tried for the error-rate series, narrowest first; the first
# that keeps the series at or under SERIES_POINTS buckets is used.
BUCKET_SECONDS = (1, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
SERIES_POINTS = 120

_UPSTREAM_CLUSTER = re.compile(
    r"^(?P<direction>inbound|outbound)\|(?P<port>\d*)\|(?P<subset>[^|]*)\|(?P<host>.*)$")


def entry_order(entry: AccessLogEntry) -> tuple:
    moment = utc(entry.timestamp) if entry.timestamp else datetime.max.replace(tzinfo=timezone.utc)
    return (moment, entry.source, entry.line)


def build_symptom(diagnosis: Mapping[str, Any], access: Sequence[AccessLogEntry],
                  pods: Sequence[PodInfo]) -> dict[str, Any]:
    """Describe the symptom: codes, flags and details, the first failing path and the hop."""
    symptoms = list(diagnosis.get("symptoms") or [])
    failing = [entry for entry in access if is_failure(entry.response_code, entry.response_flags)]
    callers = [entry for entry in failing if entry.direction == "outbound"] or failing

    codes = Counter((entry.response_code or 0, entry.direction) for entry in failing)
    flags = Counter((",".join(entry.response_flags), entry.direction) for entry in failing
                    if entry.response_flags)
    details = Counter((entry.response_code_details, entry.direction) for entry in failing
                      if entry.response_code_details)
    first = callers[0] if callers else None
    return {
        "ids": [item["id"] for item in symptoms],
        "titles": [item.get("title", item["id"]) for item in symptoms],
        "count": sum(int(item.get("count") or 0) for item in symptoms),
        "first_seen": first_of(item.get("first_seen") for item in symptoms),
        "last_seen": last_of(item.get("last_seen") for item in symptoms),
        "response_codes": _counted(codes),
        "response_flags": _counted(flags),
        "response_code_details": _counted(details),
        "first_failing_path": first.path if first else None,
        "first_failure": _evidence_of(first) if first else None,
        "hop": _hop(first, pods) if first else None,
    }


def _counted(counter: Counter) -> list[dict[str, Any]]:
    """List (value, direction) counts; the direction separates the caller's view from the callee's."""
    return [{"value": value, "direction": direction, "count": count}
            for (value, direction), count in counter.most_common()]


def _hop(entry: AccessLogEntry, pods: Sequence[PodInfo]) -> dict[str, Any]:
    caller = workload_of(entry.source, pods)
    callee = service_of(entry.upstream_cluster) or entry.authority
    return {"caller": caller, "callee": callee, "direction": entry.direction,
            "upstream_cluster": entry.upstream_cluster, "upstream_host": entry.upstream_host,
            "authority": entry.authority}


def workload_of(source: str, pods: Sequence[PodInfo]) -> str:
    """Name the workload whose sidecar wrote the log at `source`.

    The log's file name is matched against the pods read: a pod name in it
    gives `namespace/pod`, and a file named after the workload (the pod name
    without its ReplicaSet hash and suffix) gives `namespace/workload`.
    Without a match the file name up to its first dot is returned.
    """
    name = Path(source.split("!")[-1]).name
    for pod in pods:
        if pod.name and pod.name in name:
            return f"{pod.namespace}/{pod.name}" if pod.namespace else pod.name
    for pod in pods:
        workload = pod.labels.get("app") or "-".join(pod.name.split("-")[:-2])
        if workload and (name.startswith(workload + "-") or name.startswith(workload + ".")):
            return f"{pod.namespace}/{workload}" if pod.namespace else workload
    stem = name.split(".")[0]
    return stem or source


def service_of(upstream_cluster: str | None) -> str | None:
    """Return `name.namespace` of an Istio cluster such as `outbound|8080||httpbin.default.svc.cluster.local`."""
    if not upstream_cluster:
        return None
    match = _UPSTREAM_CLUSTER.match(upstream_cluster)
    if match is None:
        return upstream_cluster
    host = match["host"]
    if host.endswith(".svc.cluster.local"):
        host = host[: -len(".svc.cluster.local")]
    return host or None


def build_impact(access: Sequence[AccessLogEntry], pods: Sequence[PodInfo], *,
                 readable: bool) -> dict[str, Any]:
    """Measure failed requests and the error rate over time from the access logs.

    Both sidecars of a hop log the same request, so when callers' (outbound)
    entries exist only they are counted, else every entry is.
    """
    if not access:
        reason = ("no access log among the inputs; collect `kubectl logs POD -c istio-proxy` "
                  "of the callers") if readable else "the inputs are no longer readable"
        return {"measured": False, "reason": reason, "basis": None, "requests": 0,
                "failed_requests": 0, "error_rate": 0.0, "first_failure": None,
                "last_failure": None, "bucket_seconds": None, "series": [], "peak": None,
                "affected_workloads": []}

    outbound = [entry for entry in access if entry.direction == "outbound"]
    counted = outbound or list(access)
    failing = [entry for entry in counted if is_failure(entry.response_code, entry.response_flags)]
    series, bucket = error_rate_series(counted)
    peak = max(series, key=lambda point: (point["error_rate"], point["failed"]), default=None)

    affected: dict[str, dict[str, Any]] = {}
    for entry in failing:
        caller = workload_of(entry.source, pods) if entry.direction == "outbound" else None
        callee = service_of(entry.upstream_cluster) or entry.authority
        for role, name in (("caller", caller), ("callee", callee)):
            if not name:
                continue
            item = affected.setdefault(name, {"workload": name, "role": role, "failed": 0})
            item["failed"] += 1

    timed = [entry.timestamp for entry in failing if entry.timestamp]
    return {
        "measured": True,
        "reason": None,
        "basis": "callers' outbound entries" if outbound else "every access-log entry",
        "requests": len(counted),
        "failed_requests": len(failing),
        "error_rate": round(len(failing) / len(counted), 4) if counted else 0.0,
        "first_failure": iso(min(timed)) if timed else None,
        "last_failure": iso(max(timed)) if timed else None,
        "bucket_seconds": bucket,
        "series": series,
        "peak": peak if peak and peak["failed"] else None,
        "affected_workloads": sorted(affected.values(), key=lambda item: -item["failed"]),
    }


def error_rate_series(entries: Iterable[AccessLogEntry]) -> tuple[list[dict[str, Any]], int | None]:
    """Count requests and failures per time bucket, gaps included.

    Returns the series and the bucket width in seconds; the width is the
    narrowest of BUCKET_SECONDS that keeps the series within SERIES_POINTS.
    NOTE: doctor.logstats.summarize_entries counts the same entries per
    minute only, which leaves an incident of a few seconds (a lab fault) as
    one point, hence these narrower buckets. A test keeps the totals equal.
    """
    timed = [entry for entry in entries if entry.timestamp is not None]
    if not timed:
        return [], None
    first = min(utc(entry.timestamp) for entry in timed)
    last = max(utc(entry.timestamp) for entry in timed)
    span = (last - first).total_seconds()
    bucket = next((width for width in BUCKET_SECONDS if span / width < SERIES_POINTS),
                  BUCKET_SECONDS[-1])

    origin = _floor(first, bucket)
    requests: Counter = Counter()
    failures: Counter = Counter()
    for entry in timed:
        index = int((utc(entry.timestamp) - origin).total_seconds() // bucket)
        requests[index] += 1
        if is_failure(entry.response_code, entry.response_flags):
            failures[index] += 1

    count = max(requests) + 1
    series = []
    for index in range(count):
        total = requests[index]
        failed = failures[index]
        series.append({"start": iso(origin + timedelta(seconds=index * bucket)),
                       "requests": total, "failed": failed,
                       "error_rate": round(failed / total, 4) if total else 0.0})
    return series, bucket


def _floor(moment: datetime, seconds: int) -> datetime:
    epoch = moment.timestamp()
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=timezone.utc)


def _evidence_of(entry: AccessLogEntry) -> dict[str, Any]:
    return {"source": entry.source, "line": entry.line, "text": shorten(entry.text, 400),
            "note": ""}
