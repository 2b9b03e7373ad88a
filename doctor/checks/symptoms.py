"""Symptom detectors and the generic error-signature check.

A symptom is present when the access logs show it, when a known error
signature for it matches in free text, or when pod status shows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping

from doctor.checks import CheckRegistry, CheckResult, hit, miss
from doctor.facts import FactSet
from doctor.model import Evidence
from doctor.parsers import accesslog, envoy_admin, istioctl, kube, signatures, tls
from doctor.parsers.accesslog import AccessLogEntry
from doctor.parsers.envoy_admin import EnvoyStat
from doctor.parsers.istioctl import ProxySyncStatus
from doctor.parsers.kube import PodInfo
from doctor.parsers.signatures import SignatureMatch
from doctor.parsers.tls import TlsHandshake

# Evidence lists are capped so one huge log does not flood a report; the count stays exact.
MAX_EVIDENCE = 5
OOM_EXIT_CODE = 137


def register(registry: CheckRegistry) -> None:
    registry.register(
        "symptom.response_code", response_code,
        "Requests answered with the given HTTP status, in access logs or error signatures.",
        needs=(accesslog.KIND, signatures.KIND), params=("code", "symptom"))
    registry.register(
        "symptom.tls_failures", tls_failures,
        "TLS handshakes that failed: s_client errors and alerts, TLS reasons in access logs, "
        "and known TLS error signatures.",
        needs=(tls.KIND, accesslog.KIND, signatures.KIND), params=("symptom",))
    registry.register(
        "symptom.timeouts", timeouts,
        "Requests that timed out: 504 or UT in access logs, and known timeout signatures.",
        needs=(accesslog.KIND, signatures.KIND), params=("symptom",))
    registry.register(
        "symptom.config_not_synced", config_not_synced,
        "Proxies whose xDS state is STALE or NOT SENT, or whose Envoy rejected updates.",
        needs=(istioctl.KIND_PROXY_STATUS, envoy_admin.KIND_STATS, signatures.KIND),
        params=("symptom",))
    registry.register(
        "symptom.container_killed", container_killed,
        "Containers terminated with exit code 137 or reason OOMKilled, now or last time.",
        needs=(kube.KIND_PODS, signatures.KIND), params=("symptom",))
    registry.register(
        "symptom.slow_requests", slow_requests,
        "Requests whose duration is at or above the threshold in milliseconds.",
        needs=(accesslog.KIND,), params=("threshold_ms", "symptom"))
    registry.register(
        "signature.matched", signature_matched,
        "A line of free text matches the given known error signature.",
        needs=(signatures.KIND,), params=("signature",))


def response_code(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    code = int(args["code"])
    entries = [entry for entry in facts.of(AccessLogEntry) if entry.response_code == code]
    matches = _matches_for(facts, args.get("symptom", f"http-{code}"))

    evidence = [_entry_evidence(entry) for entry in entries[:MAX_EVIDENCE]]
    evidence += [_match_evidence(match) for match in matches[:MAX_EVIDENCE]]
    if not evidence:
        return miss(reason=f"no request answered {code} in the inputs")

    first, last = _time_range(entry.timestamp for entry in entries)
    return hit(*evidence, count=len(entries) + len(matches), first_seen=first, last_seen=last)


def tls_failures(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    evidence = []
    for handshake in facts.of(TlsHandshake):
        failed = handshake.alerts or handshake.no_peer_certificate or (
            handshake.verify_code not in (None, 0))
        if failed:
            evidence.append(Evidence(handshake.source, handshake.line, handshake.text))

    tls_words = ("TLS", "SSL", "CERTIFICATE", "certificate", "handshake")
    for entry in facts.of(AccessLogEntry):
        reason = entry.upstream_transport_failure_reason or ""
        details = entry.response_code_details or ""
        if any(word in reason or word in details for word in tls_words):
            evidence.append(_entry_evidence(entry))

    matches = _matches_for(facts, str(args.get("symptom", "tls-handshake-failure")))
    evidence += [_match_evidence(match) for match in matches]
    if not evidence:
        return miss(reason="no failed TLS handshake in the inputs")
    return hit(*evidence[:MAX_EVIDENCE * 2], count=len(evidence))


def timeouts(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    entries = [entry for entry in facts.of(AccessLogEntry)
               if entry.response_code == 504 or "UT" in entry.response_flags]
    matches = _matches_for(facts, str(args.get("symptom", "request-timeout")))

    evidence = [_entry_evidence(entry) for entry in entries[:MAX_EVIDENCE]]
    evidence += [_match_evidence(match) for match in matches[:MAX_EVIDENCE]]
    if not evidence:
        return miss(reason="no request or connection timed out in the inputs")
    first, last = _time_range(entry.timestamp for entry in entries)
    return hit(*evidence, count=len(entries) + len(matches), first_seen=first, last_seen=last)


def config_not_synced(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    evidence = []
    for proxy in facts.of(ProxySyncStatus):
        if proxy.not_synced:
            states = ", ".join(f"{kind} {state}" for kind, state in proxy.not_synced.items())
            evidence.append(Evidence(proxy.source, proxy.line, proxy.text,
                                     note=f"{proxy.proxy}: {states}"))
    for stat in facts.of(EnvoyStat):
        if stat.name.endswith("update_rejected") and stat.value > 0:
            evidence.append(Evidence(stat.source, stat.line, stat.text))

    matches = _matches_for(facts, str(args.get("symptom", "proxy-config-not-synced")))
    evidence += [_match_evidence(match) for match in matches]
    if not evidence:
        return miss(reason="every proxy is in sync and no Envoy rejected an update")
    return hit(*evidence[:MAX_EVIDENCE * 2], count=len(evidence))


def container_killed(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    evidence = []
    moments = []
    for pod in facts.of(PodInfo):
        for container in pod.containers:
            for reason, exit_code, finished in (
                (container.state_reason, container.state_exit_code, container.state_finished_at),
                (container.last_state_reason, container.last_exit_code,
                 container.last_finished_at),
            ):
                if reason == "OOMKilled" or exit_code == OOM_EXIT_CODE:
                    evidence.append(Evidence(
                        pod.source, container.line or pod.line,
                        f"{pod.namespace or '-'}/{pod.name} container {container.name}: "
                        f"{reason or 'terminated'} exit code {exit_code}",
                        note=f"finished at {finished.isoformat()}" if finished else ""))
                    if finished is not None:
                        moments.append(finished)

    matches = _matches_for(facts, str(args.get("symptom", "container-exit-137")))
    evidence += [_match_evidence(match) for match in matches[:MAX_EVIDENCE]]
    if not evidence:
        return miss(reason="no container terminated with exit code 137 or OOMKilled")
    first, last = _time_range(moments)
    return hit(*evidence[:MAX_EVIDENCE * 2], count=len(evidence), first_seen=first, last_seen=last)


def slow_requests(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    threshold = int(args.get("threshold_ms", 1000))
    slow = [entry for entry in facts.of(AccessLogEntry)
            if entry.duration_ms is not None and entry.duration_ms >= threshold]
    if not slow:
        return miss(reason=f"no request took {threshold} ms or longer")
    slow.sort(key=lambda entry: -(entry.duration_ms or 0))
    first, last = _time_range(entry.timestamp for entry in slow)
    return hit(*(_entry_evidence(entry) for entry in slow[:MAX_EVIDENCE]), count=len(slow),
               first_seen=first, last_seen=last)


def signature_matched(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    signature_id = str(args["signature"])
    matches = [match for match in facts.of(SignatureMatch) if match.signature_id == signature_id]
    if not matches:
        return miss(reason=f"no line matches the signature {signature_id}")
    return hit(*(_match_evidence(match) for match in matches[:MAX_EVIDENCE]), count=len(matches))


def _matches_for(facts: FactSet, symptom_id: str) -> list[SignatureMatch]:
    return [match for match in facts.of(SignatureMatch) if match.symptom == symptom_id]


def _entry_evidence(entry: AccessLogEntry) -> Evidence:
    return Evidence(entry.source, entry.line, entry.text)


def _match_evidence(match: SignatureMatch) -> Evidence:
    return Evidence(match.source, match.line, match.text, note=f"signature {match.signature_id}")


def _time_range(moments: Iterable[datetime | None]) -> tuple[datetime | None, datetime | None]:
    known = [moment for moment in moments if moment is not None]
    if not known:
        return None, None
    return min(known), max(known)
