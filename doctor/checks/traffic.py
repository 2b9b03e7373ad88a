"""Checks for upstream failures and sidecar resources: 503 flags, OOM kills, limits, throttling.

They read Envoy access logs, pods, `kubectl top` usage, Prometheus samples
(cAdvisor and Envoy stats) and error-signature matches. Correlation joins a
pod to the failed requests by identity (a pod IP equals the host part of an
access-log upstream host) and by time (an OOM kill within a window around
the first failed request).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from doctor.checks import CheckRegistry, CheckResult, hit, miss, unknown
from doctor.facts import FactSet
from doctor.model import Evidence
from doctor.parsers import accesslog, kube, resources, signatures
from doctor.parsers.accesslog import AccessLogEntry
from doctor.parsers.envoy_admin import EnvoyStat
from doctor.parsers.kube import ContainerInfo, PodInfo, parse_memory_bytes
from doctor.parsers.resources import ContainerUsage, MetricSample
from doctor.parsers.signatures import SignatureMatch

logger = logging.getLogger(__name__)

PROXY_CONTAINER = "istio-proxy"
OOM_EXIT_CODE = 137
# Evidence lists are capped so one huge log does not flood a report, but counts stay exact.
MAX_EVIDENCE = 5
# Response flags of a request that failed on the upstream side: UF connect failure,
# UC upstream connection termination, URX retries exhausted, UH no healthy upstream.
UPSTREAM_FAILURE_FLAGS = frozenset({"UF", "UC", "URX", "UH"})

COLLECT_ACCESS_LOG = ("collect the access log of a calling sidecar: "
                      "`kubectl logs CLIENT_POD -c istio-proxy --since=1h`")
COLLECT_PODS = "collect `kubectl get pods -n NAMESPACE -o yaml`"
CADVISOR_COMMAND = "`kubectl get --raw /api/v1/nodes/NODE/proxy/metrics/cadvisor`"
COLLECT_CADVISOR = f"collect the kubelet's cAdvisor metrics: {CADVISOR_COMMAND}"
COLLECT_USAGE = (f"collect `kubectl top pod -n NAMESPACE --containers`, or the kubelet's cAdvisor "
                 f"metrics: {CADVISOR_COMMAND}")


def register(registry: CheckRegistry) -> None:
    """Register the traffic checks. Each one decides itself when its inputs are absent."""
    registry.register(
        "traffic.response_flag", response_flag,
        "Requests with one of the Envoy response flags (optionally with a status code and a "
        "response-code detail), or lines matching the given error signatures.",
        params=("flags", "codes", "detail", "signature"))
    registry.register(
        "traffic.upstream_app_not_ready", upstream_app_not_ready,
        "An application container of a pod whose IP is the upstream host of refused or "
        "failed requests is not ready, waiting or restarting.")
    registry.register(
        "traffic.sidecar_oom_killed", sidecar_oom_killed,
        "istio-proxy (a container or a native-sidecar init container) terminated OOMKilled "
        "or with exit code 137, now or last time.")
    registry.register(
        "traffic.oom_pod_is_upstream", oom_pod_is_upstream,
        "The IP of a pod whose istio-proxy was OOMKilled is the upstream host of failed requests.")
    registry.register(
        "traffic.oom_near_first_failure", oom_near_first_failure,
        "The OOM kill of an istio-proxy falls within the window (minutes) around the first "
        "failed request to its pod.",
        params=("window_minutes",))
    registry.register(
        "traffic.proxy_oom_with_limit", proxy_oom_with_limit,
        "An istio-proxy with a memory limit was OOMKilled, so it needed more than the limit.")
    registry.register(
        "traffic.proxy_memory_limit_low", proxy_memory_limit_low,
        "An istio-proxy memory limit is below the minimum, or its measured working set is "
        "at or above the given fraction of the limit.",
        params=("minimum", "ratio"))
    registry.register(
        "traffic.outlier_ejection", outlier_ejection,
        "No-healthy-upstream (UH) responses follow upstream errors on the same cluster, or "
        "Envoy stats show outlier ejections.",
        params=("min_errors",))
    registry.register(
        "traffic.sidecar_cpu_throttled", sidecar_cpu_throttled,
        "The CFS throttled share of istio-proxy CPU periods (cAdvisor) is at or above the ratio.",
        params=("ratio",))
    registry.register(
        "traffic.sidecar_cpu_near_limit", sidecar_cpu_near_limit,
        "istio-proxy CPU usage from `kubectl top` is at or above the given fraction of its CPU limit.",
        params=("ratio",))


# ---------------------------------------------------------------------------
# Access-log checks


def response_flag(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    flags = set(_as_list(args.get("flags")))
    codes = {int(code) for code in _as_list(args.get("codes"))}
    detail = str(args["detail"]) if args.get("detail") else None
    signature_ids = {str(item) for item in _as_list(args.get("signature"))}

    entries = [entry for entry in facts.of(AccessLogEntry)
               if flags.intersection(entry.response_flags)
               and (not codes or entry.response_code in codes)
               and (detail is None or detail in _details(entry))]
    matches = [match for match in facts.of(SignatureMatch) if match.signature_id in signature_ids]

    wanted = _describe_flags(flags, codes, detail)
    if not entries and not matches:
        texts_read = bool(signature_ids) and facts.has_kind(signatures.KIND)
        if not facts.has_kind(accesslog.KIND) and not texts_read:
            return unknown(f"no access log was read; {COLLECT_ACCESS_LOG}")
        reason = f"no request with {wanted}"
        if signature_ids:
            reason += f" and no line matching the signature {' or '.join(sorted(signature_ids))}"
        return miss(reason=reason)

    evidence = [_entry_evidence(entry) for entry in entries[:MAX_EVIDENCE]]
    evidence += [Evidence(match.source, match.line, match.text, note=f"signature {match.signature_id}")
                 for match in matches[:MAX_EVIDENCE]]
    first, last = _time_range(entry.timestamp for entry in entries)
    return hit(*evidence, count=len(entries) + len(matches), first_seen=first, last_seen=last,
               reason=f"{len(entries)} request(s) with {wanted}")


def upstream_app_not_ready(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    if not facts.has_kind(kube.KIND_PODS):
        return unknown(f"no pod status was read; {COLLECT_PODS} for the upstream service")
    if not facts.has_kind(accesslog.KIND):
        return unknown(f"no access log was read, so the failing upstream pods are not known; "
                       f"{COLLECT_ACCESS_LOG}")
    failed = _failed_by_host(facts)
    if not failed:
        return miss(reason="no request failed with UF, UC, URX or UH against a known upstream host")

    evidence = []
    matched_pods = 0
    for pod in facts.of(PodInfo):
        entries = _entries_for_pod(pod, failed)
        if not entries:
            continue
        matched_pods += 1
        for container in pod.containers:
            if container.name == PROXY_CONTAINER or (container.is_init and not container.is_native_sidecar):
                continue
            problem = _not_ready(container)
            if problem:
                evidence.append(Evidence(pod.source, container.state_line or container.line or pod.line,
                                         f"{_pod_name(pod)} container {container.name}: {problem}",
                                         note=f"pod IP is the upstream host of {len(entries)} failed request(s)"))
                evidence.append(_entry_evidence(entries[0]))
    if not matched_pods:
        return unknown("no pod among the inputs has the IP of a failing upstream host "
                       f"({', '.join(sorted(failed)[:3])}); {COLLECT_PODS} for the upstream service")
    if not evidence:
        return miss(reason="the application containers of the upstream pods are ready and running")
    return hit(*evidence[:MAX_EVIDENCE * 2], count=len(evidence) // 2)


# ---------------------------------------------------------------------------
# Sidecar OOM kills


def sidecar_oom_killed(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    kills = list(_proxy_oom_kills(facts))
    proxies = [container for pod in facts.of(PodInfo) for container in _proxies(pod)]
    if not kills:
        if not proxies:
            return unknown("no pod among the inputs has an istio-proxy container or native-sidecar "
                           f"init container; {COLLECT_PODS} for the pods behind the failing service")
        return miss(reason=f"none of {len(proxies)} istio-proxy container(s) terminated OOMKilled "
                           "or with exit code 137")
    evidence = [_kill_evidence(pod, container, kill) for pod, container, kill in kills]
    moments = [kill.finished for _, _, kill in kills]
    first, last = _time_range(moments)
    return hit(*evidence[:MAX_EVIDENCE], count=len(kills), first_seen=first, last_seen=last)


def oom_pod_is_upstream(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    if not facts.has_kind(kube.KIND_PODS):
        return unknown(f"no pod status was read; {COLLECT_PODS} for the pods behind the failing service")
    kills = list(_proxy_oom_kills(facts))
    if not kills:
        return miss(reason="no istio-proxy was OOMKilled, so there is no pod to correlate")
    if not facts.has_kind(accesslog.KIND):
        return unknown(f"no access log was read to join the OOMKilled pod's IP to failed requests; "
                       f"{COLLECT_ACCESS_LOG}")
    failed = _failed_by_host(facts, include_5xx=True)

    evidence = []
    count = 0
    unaddressed = []
    for pod, container, kill in kills:
        if not pod.pod_ips:
            unaddressed.append(_pod_name(pod))
            continue
        entries = _entries_for_pod(pod, failed)
        if entries:
            count += len(entries)
            evidence.append(_kill_evidence(pod, container, kill))
            evidence.extend(_entry_evidence(entry, f"upstream host is pod {_pod_name(pod)}")
                            for entry in entries[:MAX_EVIDENCE])
    if evidence:
        return hit(*evidence, count=count)
    if unaddressed and len(unaddressed) == len(kills):
        return unknown(f"the pod status of {', '.join(unaddressed)} has no podIP to match against "
                       "access-log upstream hosts; collect the pod with `kubectl get pod POD -o yaml` "
                       "while it is scheduled")
    return miss(reason="no failed request in the access logs went to the IP of a pod whose "
                       "istio-proxy was OOMKilled")


def oom_near_first_failure(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    if not facts.has_kind(kube.KIND_PODS):
        return unknown(f"no pod status was read; {COLLECT_PODS} for the pods behind the failing service")
    window = timedelta(minutes=float(args.get("window_minutes", 5)))
    kills = list(_proxy_oom_kills(facts))
    if not kills:
        return miss(reason="no istio-proxy was OOMKilled, so there is no time to correlate")
    if not facts.has_kind(accesslog.KIND):
        return unknown(f"no access log was read to compare the OOM kill time with the first "
                       f"failed request; {COLLECT_ACCESS_LOG}")
    timed = [(pod, container, kill) for pod, container, kill in kills if kill.finished is not None]
    if not timed:
        return unknown("the OOMKilled istio-proxy status has no finishedAt time; collect "
                       "`kubectl get pod POD -o yaml` soon after the kill, before a later "
                       "restart replaces lastState")

    failed = _failed_by_host(facts, include_5xx=True)
    all_failed = sorted((entry for entries in failed.values() for entry in entries
                         if entry.timestamp is not None), key=lambda entry: _as_utc(entry.timestamp))
    evidence = []
    for pod, container, kill in timed:
        candidates = _entries_for_pod(pod, failed) or all_failed
        candidates = [entry for entry in candidates if entry.timestamp is not None]
        if not candidates:
            continue
        first = min(candidates, key=lambda entry: _as_utc(entry.timestamp))
        gap = _difference(first.timestamp, kill.finished)
        if gap > window:
            continue
        evidence.append(_kill_evidence(pod, container, kill))
        evidence.append(_entry_evidence(
            first, f"first failed request, {gap.total_seconds():.0f} s from the OOM kill "
                   f"(window ±{window.total_seconds() / 60:g} min)"))
    if not all_failed:
        return miss(reason="no failed request with a timestamp in the access logs")
    if not evidence:
        return miss(reason=f"no OOM kill lies within ±{window.total_seconds() / 60:g} minutes "
                           "of the first failed request")
    return hit(*evidence, count=len(evidence) // 2)


# ---------------------------------------------------------------------------
# Sidecar memory limit


def proxy_oom_with_limit(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    kills = list(_proxy_oom_kills(facts))
    if not kills:
        if not any(_proxies(pod) for pod in facts.of(PodInfo)):
            return unknown(f"no pod among the inputs has an istio-proxy; {COLLECT_PODS}")
        return miss(reason="no istio-proxy was OOMKilled")
    limited = [(pod, container, kill) for pod, container, kill in kills
               if container.memory_limit_bytes is not None]
    if not limited:
        return miss(reason="the OOMKilled istio-proxy has no memory limit in the pod spec, so the "
                           "node ran out of memory rather than the container hitting its limit")
    evidence = []
    for pod, container, kill in limited:
        limit = _mebibytes(container.memory_limit_bytes)
        evidence.append(_kill_evidence(pod, container, kill, f"memory limit {limit}"))
        evidence.append(Evidence(pod.source, container.memory_limit_line or container.line or pod.line,
                                 f"{_pod_name(pod)} istio-proxy memory limit {limit}",
                                 note="the limit the container reached when it was killed"))
    return hit(*evidence[:MAX_EVIDENCE], count=len(limited))


def proxy_memory_limit_low(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    minimum = parse_memory_bytes(args.get("minimum", "128Mi"))
    ratio = float(args.get("ratio", 0.9))
    usage = _proxy_memory_usage(facts)

    evidence = []
    limits = 0
    for pod in facts.of(PodInfo):
        for container in _proxies(pod):
            limit = container.memory_limit_bytes
            if limit is None:
                continue
            limits += 1
            if limit < minimum:
                evidence.append(Evidence(pod.source, container.memory_limit_line or container.line or pod.line,
                                         f"{_pod_name(pod)} istio-proxy memory limit {_mebibytes(limit)}",
                                         note=f"below {_mebibytes(minimum)}"))
            measured = usage.get((pod.namespace, pod.name)) or usage.get((None, pod.name))
            if measured is not None and measured[0] >= ratio * limit:
                working_set, source, line, text = measured
                evidence.append(Evidence(source, line, text,
                                         note=f"working set {_mebibytes(working_set)} is "
                                              f"{working_set / limit:.0%} of the {_mebibytes(limit)} limit"))
    if evidence:
        return hit(*evidence[:MAX_EVIDENCE], count=len(evidence))
    if not limits:
        return unknown(f"no istio-proxy among the pods read has a memory limit; {COLLECT_PODS}")
    if not usage:
        return unknown(f"every istio-proxy memory limit is at least {_mebibytes(minimum)}, and no "
                       f"working-set measurement was read to compare; {COLLECT_USAGE}")
    return miss(reason=f"istio-proxy memory limits are at least {_mebibytes(minimum)} and the "
                       f"measured working sets stay below {ratio:.0%} of them")


# ---------------------------------------------------------------------------
# Outlier ejection


def outlier_ejection(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    min_errors = int(args.get("min_errors", 1))
    if not (facts.has_kind(accesslog.KIND) or facts.has_kind(resources.KIND_METRICS)
            or facts.of(EnvoyStat)):
        return unknown(f"neither an access log nor Envoy stats were read; {COLLECT_ACCESS_LOG}, or "
                       "`kubectl exec CLIENT_POD -c istio-proxy -- pilot-agent request GET stats/prometheus`")
    evidence = []
    count = 0

    by_cluster: dict[str | None, list[AccessLogEntry]] = {}
    for entry in facts.of(AccessLogEntry):
        by_cluster.setdefault(entry.upstream_cluster, []).append(entry)
    for cluster, entries in by_cluster.items():
        if cluster is None:
            continue
        errors: list[AccessLogEntry] = []
        reported = False
        for entry in sorted(entries, key=_entry_order):
            if "UH" not in entry.response_flags:
                if _is_upstream_error(entry):
                    errors.append(entry)
                continue
            if len(errors) < min_errors:
                continue
            count += 1
            if not reported:
                reported = True
                evidence.append(_entry_evidence(errors[-1], "last upstream error before the ejection"))
                evidence.append(_entry_evidence(
                    entry, f"no healthy upstream after {len(errors)} upstream error(s) on {cluster}"))

    for sample in facts.of(MetricSample):
        if ("outlier_detection_ejections_active" in sample.name and sample.value > 0) or (
                "outlier_detection_ejections_enforced_total" in sample.name and sample.value > 0):
            count += 1
            evidence.append(Evidence(sample.source, sample.line, sample.text,
                                     note="Envoy ejected hosts through outlier detection"))
    # The admin /stats text names the same counters with dots.
    for stat in facts.of(EnvoyStat):
        if stat.value > 0 and stat.name.endswith((".outlier_detection.ejections_active",
                                                  ".outlier_detection.ejections_enforced_total")):
            count += 1
            evidence.append(Evidence(stat.source, stat.line, stat.text,
                                     note="Envoy ejected hosts through outlier detection"))

    if evidence:
        return hit(*evidence[:MAX_EVIDENCE * 2], count=count)
    if not any("UH" in entry.response_flags for entry in facts.of(AccessLogEntry)):
        return miss(reason="no UH (no healthy upstream) response in the access logs and no "
                           "outlier ejection in the Envoy stats")
    return miss(reason=f"the UH responses follow fewer than {min_errors} upstream error(s) on the "
                       "same cluster, and no Envoy stats show ejections")


# ---------------------------------------------------------------------------
# CPU throttling


def sidecar_cpu_throttled(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    ratio = float(args.get("ratio", 0.25))
    periods: dict[tuple[str | None, str | None], MetricSample] = {}
    throttled: dict[tuple[str | None, str | None], MetricSample] = {}
    for sample in facts.of(MetricSample):
        if sample.labels.get("container") != PROXY_CONTAINER:
            continue
        key = (sample.labels.get("namespace"), sample.labels.get("pod"))
        if sample.name == resources.CPU_PERIODS:
            periods[key] = sample
        elif sample.name == resources.CPU_THROTTLED_PERIODS:
            throttled[key] = sample

    if not periods:
        return unknown("no cAdvisor CPU period counters (container_cpu_cfs_periods_total) for "
                       f"istio-proxy were read; {COLLECT_CADVISOR}")
    evidence = []
    for key, total in periods.items():
        throttled_sample = throttled.get(key)
        if throttled_sample is None or total.value <= 0:
            continue
        share = throttled_sample.value / total.value
        if share >= ratio:
            evidence.append(Evidence(throttled_sample.source, throttled_sample.line, throttled_sample.text,
                                     note=f"{share:.0%} of {total.value:.0f} CFS periods throttled "
                                          f"for {key[0] or '-'}/{key[1]} istio-proxy"))
    if not evidence:
        return miss(reason=f"istio-proxy was throttled in less than {ratio:.0%} of its CFS periods")
    return hit(*evidence[:MAX_EVIDENCE], count=len(evidence))


def sidecar_cpu_near_limit(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    ratio = float(args.get("ratio", 0.9))
    if not facts.has_kind(resources.KIND_TOP):
        return unknown("no `kubectl top pod --containers` output was read; collect "
                       "`kubectl top pod -n NAMESPACE --containers`")
    if not facts.has_kind(kube.KIND_PODS):
        return unknown(f"kubectl top was read but no pod spec gives the istio-proxy CPU limit; {COLLECT_PODS}")
    limits = {}
    for pod in facts.of(PodInfo):
        for container in _proxies(pod):
            if container.cpu_limit_millicores:
                limits[pod.name] = container.cpu_limit_millicores

    evidence = []
    compared = 0
    for usage in facts.of(ContainerUsage):
        if usage.container != PROXY_CONTAINER or usage.pod not in limits or usage.cpu_millicores is None:
            continue
        compared += 1
        limit = limits[usage.pod]
        if usage.cpu_millicores >= ratio * limit:
            evidence.append(Evidence(usage.source, usage.line, usage.text,
                                     note=f"{usage.cpu_millicores}m is {usage.cpu_millicores / limit:.0%} "
                                          f"of the {limit}m CPU limit"))
    if evidence:
        return hit(*evidence[:MAX_EVIDENCE], count=len(evidence))
    if not compared:
        return unknown("no istio-proxy row of kubectl top matches a pod with an istio-proxy CPU limit; "
                       "collect `kubectl top pod --containers` and the pod spec of the same pods")
    return miss(reason=f"istio-proxy CPU usage stays below {ratio:.0%} of its limit")


# ---------------------------------------------------------------------------
# Helpers


class _Kill:
    """One OOM termination of a container, from its current or its last state."""

    def __init__(self, reason: str | None, exit_code: int | None, finished: datetime | None,
                 which: str) -> None:
        self.reason = reason
        self.exit_code = exit_code
        self.finished = finished
        self.which = which


def _proxies(pod: PodInfo) -> list[ContainerInfo]:
    """Return istio-proxy as a container or as a native-sidecar init container."""
    return [container for container in pod.containers
            if container.name == PROXY_CONTAINER and (not container.is_init or container.is_native_sidecar)]


def _proxy_oom_kills(facts: FactSet) -> Iterable[tuple[PodInfo, ContainerInfo, _Kill]]:
    for pod in facts.of(PodInfo):
        for container in _proxies(pod):
            states = (
                (container.state == "terminated", container.state_reason, container.state_exit_code,
                 container.state_finished_at, "state"),
                (True, container.last_state_reason, container.last_exit_code,
                 container.last_finished_at, "lastState"),
            )
            for terminated, reason, exit_code, finished, which in states:
                if terminated and (reason == "OOMKilled" or exit_code == OOM_EXIT_CODE):
                    yield pod, container, _Kill(reason, exit_code, finished, which)


def _kill_evidence(pod: PodInfo, container: ContainerInfo, kill: _Kill, extra: str = "") -> Evidence:
    kind = "native-sidecar init container" if container.is_native_sidecar else "container"
    notes = [f"{kind}, {kill.which}"]
    if kill.finished is not None:
        notes.append(f"finished at {kill.finished.isoformat()}")
    if extra:
        notes.append(extra)
    state_line = container.state_line if kill.which == "state" else container.last_state_line
    return Evidence(pod.source, state_line or container.line or pod.line,
                    f"{_pod_name(pod)} {container.name}: terminated {kill.reason or '-'} "
                    f"exit code {kill.exit_code if kill.exit_code is not None else '-'}",
                    note="; ".join(notes))


def _failed_by_host(facts: FactSet, include_5xx: bool = False) -> dict[str, list[AccessLogEntry]]:
    """Group failed requests by upstream host IP (the host part of `ip:port`)."""
    failed: dict[str, list[AccessLogEntry]] = {}
    for entry in facts.of(AccessLogEntry):
        host = host_ip(entry.upstream_host)
        if host is None:
            continue
        local_failure = bool(UPSTREAM_FAILURE_FLAGS.intersection(entry.response_flags))
        if local_failure or (include_5xx and entry.response_code is not None and entry.response_code >= 500):
            failed.setdefault(host, []).append(entry)
    return failed


def _entries_for_pod(pod: PodInfo, failed: Mapping[str, Sequence[AccessLogEntry]]) -> list[AccessLogEntry]:
    entries: list[AccessLogEntry] = []
    for ip in pod.pod_ips:
        entries.extend(failed.get(ip, ()))
    return sorted(entries, key=_entry_order)


def host_ip(address: str | None) -> str | None:
    """Return the IP of `10.0.0.1:8080` or `[fd00::1]:8080`, or a bare IP as it is."""
    if not address:
        return None
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    if address.count(":") == 1:
        return address.rsplit(":", 1)[0]
    return address


def _not_ready(container: ContainerInfo) -> str | None:
    if container.state == "waiting":
        return f"waiting ({container.state_reason or 'no reason given'})"
    if container.state == "terminated" and not container.is_init:
        return f"terminated ({container.state_reason or 'no reason given'}, exit code {container.state_exit_code})"
    if container.ready is False:
        return "not ready"
    return None


def _is_upstream_error(entry: AccessLogEntry) -> bool:
    if {"UF", "UC", "URX"}.intersection(entry.response_flags):
        return True
    return entry.response_code is not None and 500 <= entry.response_code < 600 \
        and entry.upstream_host is not None


def _proxy_memory_usage(facts: FactSet) -> dict[tuple[str | None, str], tuple[int, str, int, str]]:
    """Map (namespace, pod) to the istio-proxy working set with its citation."""
    usage: dict[tuple[str | None, str], tuple[int, str, int, str]] = {}
    for row in facts.of(ContainerUsage):
        if row.container == PROXY_CONTAINER and row.memory_bytes is not None:
            usage[(row.namespace, row.pod)] = (row.memory_bytes, row.source, row.line, row.text)
    for sample in facts.of(MetricSample):
        if sample.name == resources.MEMORY_WORKING_SET and sample.labels.get("container") == PROXY_CONTAINER:
            pod_name = sample.labels.get("pod")
            if pod_name:
                key = (sample.labels.get("namespace"), pod_name)
                usage.setdefault(key, (int(sample.value), sample.source, sample.line, sample.text))
    return usage


def _details(entry: AccessLogEntry) -> str:
    return " ".join(part for part in (entry.response_code_details, entry.upstream_transport_failure_reason,
                                      entry.connection_termination_details) if part)


def _describe_flags(flags: set[str], codes: set[int], detail: str | None) -> str:
    text = f"response flag {' or '.join(sorted(flags))}"
    if codes:
        text += f" and status {' or '.join(str(code) for code in sorted(codes))}"
    if detail:
        text += f" and detail {detail!r}"
    return text


def _entry_evidence(entry: AccessLogEntry, note: str = "") -> Evidence:
    return Evidence(entry.source, entry.line, entry.text, note=note)


def _entry_order(entry: AccessLogEntry) -> tuple[Any, ...]:
    stamp = _as_utc(entry.timestamp).timestamp() if entry.timestamp is not None else float("inf")
    return (stamp, entry.source, entry.line)


def _difference(first: datetime, second: datetime) -> timedelta:
    return abs(_as_utc(first) - _as_utc(second))


def _as_utc(moment: datetime) -> datetime:
    """Return `moment` with a zone; a naive time is taken as UTC, as the logs write it."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _time_range(moments: Iterable[datetime | None]) -> tuple[datetime | None, datetime | None]:
    known = [moment for moment in moments if moment is not None]
    if not known:
        return None, None
    return min(known, key=_as_utc), max(known, key=_as_utc)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _pod_name(pod: PodInfo) -> str:
    return f"{pod.namespace or '-'}/{pod.name}"


def _mebibytes(value: int) -> str:
    return f"{value / 2**20:g}Mi"
