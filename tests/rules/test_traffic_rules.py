"""Upstream and sidecar-resource rules on real captures, cases and recordings.

Every cause has a case that fires it, one that does not, and one where its
input is absent so its check reports unknown with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from doctor.checks import HIT, MISS, UNKNOWN, CheckResult
from doctor.diagnosis import CauseStatus, Finding
from doctor.facts import FactSet
from doctor.readers import read_paths
from doctor.scan import Engine
from rule_helpers import diagnose, finding, outcome

DATA = Path(__file__).resolve().parent.parent / "data"
CORPUS = DATA / "corpus" / "access-logs"
CASES = DATA / "cases"
RECORDED = DATA / "recorded"
INCIDENT = RECORDED / "oom-incident"

CASE_20 = CASES / "20-oom-sidecar-memory-limit-many-tcp-services"
CASE_26 = CASES / "26-mtu-calico-jumbo-frames-webhook-timeout"
UO_TEXT = CORPUS / "37-istio-1.2x-text-503-UO-overflow-fortio.log"
UO_JSON = CORPUS / "12-istio-json-raw-http-UO-conn-pool-overflow-client.log"
UH_EJECTED = CORPUS / "14-istio-json-raw-http-UH-outlier-ejection-client.log"
ENVOY_TEXT = RECORDED / "envoy-1.40-istio-text-1.24.log"
INCIDENT_FILES = (
    INCIDENT / "frontend-istio-proxy-access.log",
    INCIDENT / "kubectl-get-pods-shop.yaml",
    INCIDENT / "kubectl-top-pod-containers.txt",
    INCIDENT / "kubelet-cadvisor-worker-2.txt",
)
HEALTHY_POD = RECORDED / "oom-incident-healthy" / "kubectl-get-pod-frontend.yaml"


def facts_of(engine: Engine, *paths: Path) -> FactSet:
    return read_paths(list(paths), engine.rulebook.signatures).facts


def run(engine: Engine, check_id: str, facts: FactSet, **args: Any) -> CheckResult:
    spec = engine.registry.get(check_id)
    assert spec is not None, check_id
    return spec.function(facts, args)


def supporting_texts(item: Finding) -> list[str]:
    return [evidence.text for evidence in item.evidence if evidence.supports]


# --- upstream-connect-failure ------------------------------------------------------


def test_connect_failure_fires_on_uf(engine: Engine) -> None:
    item = finding(diagnose(engine, ENVOY_TEXT), "upstream-connect-failure")

    assert item.status == CauseStatus.CONFIRMED
    assert any('503 URX,UF' in text for text in supporting_texts(item))


def test_connect_failure_fires_on_curl_text(engine: Engine) -> None:
    curl = CASES / "03-503-dr-without-istio-mutual-overrides-mtls" / "client-curl.txt"
    item = finding(diagnose(engine, curl), "upstream-connect-failure")

    assert item.status == CauseStatus.CONFIRMED
    assert any("upstream connect error" in text for text in supporting_texts(item))


def test_connect_failure_quiet_on_overflow(engine: Engine) -> None:
    item = finding(diagnose(engine, UO_TEXT), "upstream-connect-failure")

    assert item.status == CauseStatus.RULED_OUT


def test_connect_failure_unknown_without_log(engine: Engine) -> None:
    result = run(engine, "traffic.response_flag", facts_of(engine, CASE_20 / "pod.json"),
                 flags=["UF", "UC"], codes=[503, 0])

    assert result.result == UNKNOWN
    assert "kubectl logs" in result.reason


# --- upstream-app-down -------------------------------------------------------------


def test_app_down_likely_on_refused(engine: Engine) -> None:
    item = finding(diagnose(engine, ENVOY_TEXT), "upstream-app-down")

    assert item.status == CauseStatus.LIKELY
    assert outcome(item, "traffic.response_flag").result == HIT
    assert outcome(item, "traffic.upstream_app_not_ready").result == UNKNOWN
    assert "no pod status" in outcome(item, "traffic.upstream_app_not_ready").reason


def test_app_down_quiet_on_overflow(engine: Engine) -> None:
    item = finding(diagnose(engine, UO_TEXT, HEALTHY_POD), "upstream-app-down")

    assert item.status == CauseStatus.RULED_OUT
    assert outcome(item, "traffic.upstream_app_not_ready").result == MISS


def test_app_down_ruled_out_by_dead_sidecar(engine: Engine) -> None:
    item = finding(diagnose(engine, *INCIDENT_FILES), "upstream-app-down")

    assert item.status == CauseStatus.RULED_OUT
    assert outcome(item, "traffic.oom_pod_is_upstream").result == HIT


def test_app_not_ready_unknown_without_pods(engine: Engine) -> None:
    result = run(engine, "traffic.upstream_app_not_ready", facts_of(engine, ENVOY_TEXT))

    assert result.result == UNKNOWN
    assert "kubectl get pods" in result.reason


# --- circuit-breaker-overflow ------------------------------------------------------


@pytest.mark.parametrize("path", [UO_TEXT, UO_JSON], ids=["text", "json"])
def test_overflow_fires_on_uo(engine: Engine, path: Path) -> None:
    item = finding(diagnose(engine, path), "circuit-breaker-overflow")

    assert item.status == CauseStatus.CONFIRMED
    assert any("overflow" in text for text in supporting_texts(item))


def test_overflow_quiet_without_uo(engine: Engine) -> None:
    item = finding(diagnose(engine, ENVOY_TEXT), "circuit-breaker-overflow")

    assert item.status == CauseStatus.RULED_OUT


def test_overflow_unknown_without_log(engine: Engine) -> None:
    result = run(engine, "traffic.response_flag", facts_of(engine, CASE_20 / "pod.json"), flags=["UO"])

    assert result.result == UNKNOWN


# --- no-healthy-upstream and outlier-ejection ---------------------------------------


def test_no_healthy_upstream_fires_on_uh(engine: Engine) -> None:
    item = finding(diagnose(engine, ENVOY_TEXT), "no-healthy-upstream")

    assert item.status == CauseStatus.CONFIRMED
    assert any("no_healthy_upstream" in text for text in supporting_texts(item))


def test_no_healthy_upstream_quiet_on_overflow(engine: Engine) -> None:
    item = finding(diagnose(engine, UO_TEXT), "no-healthy-upstream")

    assert item.status == CauseStatus.RULED_OUT


def test_no_healthy_upstream_unknown_without_log(engine: Engine) -> None:
    result = run(engine, "traffic.response_flag", facts_of(engine, CASE_20 / "pod.json"), flags=["UH"])

    assert result.result == UNKNOWN


def test_ejection_fires_after_upstream_errors(engine: Engine) -> None:
    diagnosis = diagnose(engine, UH_EJECTED)
    item = finding(diagnosis, "outlier-ejection")
    texts = supporting_texts(item)

    assert item.status == CauseStatus.CONFIRMED
    assert item.chain == ("http-503", "no-healthy-upstream", "outlier-ejection")
    assert any('"response_code_details":"via_upstream"' in text for text in texts)
    assert any("no_healthy_upstream" in text for text in texts)
    assert diagnosis.top is not None and diagnosis.top.cause_id == "outlier-ejection"


def test_ejection_quiet_on_empty_cluster(engine: Engine) -> None:
    diagnosis = diagnose(engine, ENVOY_TEXT)

    assert finding(diagnosis, "no-healthy-upstream").status == CauseStatus.CONFIRMED
    assert finding(diagnosis, "outlier-ejection").status == CauseStatus.RULED_OUT


def test_ejection_unknown_without_log(engine: Engine) -> None:
    result = run(engine, "traffic.outlier_ejection", facts_of(engine, CASE_20 / "pod.json"))

    assert result.result == UNKNOWN
    assert "stats/prometheus" in result.reason


# --- sidecar-oom-killed ---------------------------------------------------------------


def test_oom_fires_with_ip_and_time(engine: Engine) -> None:
    item = finding(diagnose(engine, *INCIDENT_FILES), "sidecar-oom-killed")
    by_ip = outcome(item, "traffic.oom_pod_is_upstream")
    by_time = outcome(item, "traffic.oom_near_first_failure")

    assert item.status == CauseStatus.CONFIRMED
    assert any('"127.0.0.27:8080"' in evidence.text and "503 UF" in evidence.text
               for evidence in by_ip.evidence)
    assert any("window ±5 min" in evidence.note for evidence in by_time.evidence)
    assert any("native-sidecar init container" in evidence.note for evidence in item.evidence)
    assert item.chain == ("http-503", "upstream-connect-failure", "sidecar-oom-killed")


def test_incident_top_is_memory_limit(engine: Engine) -> None:
    top = diagnose(engine, *INCIDENT_FILES).top

    assert top is not None
    assert top.cause_id == "proxy-memory-limit-too-low"
    assert top.status == CauseStatus.CONFIRMED
    assert "sidecar-oom-killed" in top.chain


def test_oom_quiet_on_healthy_pod(engine: Engine) -> None:
    facts = facts_of(engine, HEALTHY_POD, INCIDENT / "frontend-istio-proxy-access.log")

    assert run(engine, "traffic.sidecar_oom_killed", facts).result == MISS
    assert run(engine, "traffic.oom_pod_is_upstream", facts).result == MISS
    assert run(engine, "traffic.proxy_oom_with_limit", facts).result == MISS


def test_oom_outside_window_does_not_correlate(engine: Engine) -> None:
    # The corpus log is from 2025; the recorded kill is from the recording run.
    facts = facts_of(engine, INCIDENT / "kubectl-get-pods-shop.yaml", UO_TEXT, ENVOY_TEXT)
    by_time = run(engine, "traffic.oom_near_first_failure", facts, window_minutes=5)
    by_ip = run(engine, "traffic.oom_pod_is_upstream", facts)

    assert by_time.result == MISS
    assert "±5 minutes" in by_time.reason
    assert by_ip.result == MISS


def test_oom_correlates_mixed_zone_times(engine: Engine, tmp_path: Path) -> None:
    # Half of the lines lose their `Z`, so naive and aware start times meet in one sort.
    lines = (INCIDENT / "frontend-istio-proxy-access.log").read_text(encoding="utf-8").splitlines()
    mixed = [line.replace("Z]", "]", 1) if index % 2 else line for index, line in enumerate(lines)]
    path = tmp_path / "access.log"
    path.write_text("\n".join(mixed) + "\n", encoding="utf-8")
    facts = facts_of(engine, INCIDENT / "kubectl-get-pods-shop.yaml", path)

    by_time = run(engine, "traffic.oom_near_first_failure", facts)

    assert by_time.result == HIT
    assert any("window ±5 min" in evidence.note for evidence in by_time.evidence)


def test_oom_correlation_unknown_without_log(engine: Engine) -> None:
    item = finding(diagnose(engine, CASE_20), "sidecar-oom-killed")

    assert outcome(item, "traffic.sidecar_oom_killed").result == HIT
    assert outcome(item, "traffic.oom_pod_is_upstream").result == UNKNOWN
    assert "kubectl logs" in outcome(item, "traffic.oom_pod_is_upstream").reason
    assert outcome(item, "traffic.oom_near_first_failure").result == UNKNOWN


def test_oom_unknown_without_pods(engine: Engine) -> None:
    diagnosis = diagnose(engine, ENVOY_TEXT)
    item = finding(diagnosis, "sidecar-oom-killed")

    assert item.status == CauseStatus.UNKNOWN
    assert "kubectl get pods" in outcome(item, "traffic.oom_pod_is_upstream").reason


def test_case_20_puts_oom_on_top(engine: Engine) -> None:
    top = diagnose(engine, CASE_20).top

    assert top is not None
    assert top.cause_id in ("sidecar-oom-killed", "proxy-memory-limit-too-low")
    assert "sidecar-oom-killed" in top.chain
    assert any("OOMKilled" in evidence.text for evidence in top.evidence)


# --- proxy-memory-limit-too-low ------------------------------------------------------


def test_memory_limit_fires_on_low_limit(engine: Engine) -> None:
    item = finding(diagnose(engine, *INCIDENT_FILES), "proxy-memory-limit-too-low")
    notes = [evidence.note for evidence in item.evidence if evidence.supports]

    assert item.status == CauseStatus.CONFIRMED
    assert any("below 128Mi" in note for note in notes)
    assert any("of the 64Mi limit" in note for note in notes)


def test_memory_limit_quiet_on_big_limit(engine: Engine) -> None:
    facts = facts_of(engine, HEALTHY_POD, INCIDENT / "kubectl-top-pod-containers.txt")
    result = run(engine, "traffic.proxy_memory_limit_low", facts, minimum="128Mi", ratio=0.9)

    assert result.result == MISS


def test_memory_limit_unknown_without_usage(engine: Engine) -> None:
    item = finding(diagnose(engine, CASE_20), "proxy-memory-limit-too-low")
    check = outcome(item, "traffic.proxy_memory_limit_low")

    assert check.result == UNKNOWN
    assert "kubectl top pod" in check.reason
    assert outcome(item, "traffic.proxy_oom_with_limit").result == HIT


# --- sidecar-cpu-throttling -------------------------------------------------------------


def test_throttling_fires_on_cadvisor(engine: Engine) -> None:
    item = finding(diagnose(engine, *INCIDENT_FILES), "sidecar-cpu-throttling")

    assert item.status == CauseStatus.CONFIRMED
    assert any("50% of 18234 CFS periods throttled" in evidence.note for evidence in item.evidence)


def test_throttling_quiet_below_ratio(engine: Engine) -> None:
    facts = facts_of(engine, *INCIDENT_FILES)

    assert run(engine, "traffic.sidecar_cpu_throttled", facts, ratio=0.6).result == MISS
    assert run(engine, "traffic.sidecar_cpu_near_limit", facts, ratio=0.95).result == MISS


def test_throttling_unknown_without_metrics(engine: Engine) -> None:
    diagnosis = diagnose(engine, UO_JSON)
    item = finding(diagnosis, "sidecar-cpu-throttling")

    assert "tail-latency" in [symptom.symptom_id for symptom in diagnosis.symptoms]
    assert item.status == CauseStatus.UNKNOWN
    assert "cadvisor" in outcome(item, "traffic.sidecar_cpu_throttled").reason


# --- mtu-blackhole ----------------------------------------------------------------------


def test_case_26_puts_mtu_on_top(engine: Engine) -> None:
    top = diagnose(engine, CASE_26).top

    assert top is not None
    assert top.cause_id == "mtu-blackhole"
    assert top.status == CauseStatus.CONFIRMED
    assert any("MTU: 8912" in text for text in supporting_texts(top))


def test_mtu_needs_more_than_timeout(engine: Engine) -> None:
    item = finding(diagnose(engine, CASE_26 / "events.txt"), "mtu-blackhole")

    assert item.status == CauseStatus.POSSIBLE


def test_mtu_quiet_on_other_text(engine: Engine) -> None:
    facts = facts_of(engine, CASES / "03-503-dr-without-istio-mutual-overrides-mtls" / "client-curl.txt")

    assert run(engine, "signature.matched", facts, signature="traffic-cni-jumbo-mtu").result == MISS


def test_mtu_unknown_without_text(engine: Engine) -> None:
    item = finding(diagnose(engine, UO_JSON), "mtu-blackhole")

    assert item.status == CauseStatus.UNKNOWN
    assert all(check.result == UNKNOWN for check in item.checks)
