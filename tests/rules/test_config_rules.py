"""mTLS, RBAC, local rate limit and proxy sync rules on cases and real Envoy recordings.

Every cause has a case that fires it, one that does not, and one where its
input is absent so a check reports unknown with the reason. The shipped
rulebook runs whole, so the case tests also prove the ranking against every
other helper's causes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doctor.checks import HIT, MISS, UNKNOWN
from doctor.checks.config import host_namespace
from doctor.diagnosis import CauseStatus, Diagnosis
from doctor.facts import FactSet
from doctor.readers import read_paths
from doctor.scan import Engine
from rule_helpers import diagnose, finding, outcome

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
CASES = DATA / "cases"
CORPUS = DATA / "corpus"
RECORDED = DATA / "recorded" / "envoy-admin"

CASE_03 = CASES / "03-503-dr-without-istio-mutual-overrides-mtls"
CASE_07 = CASES / "07-403-apirule-gateway-only-principal"
CASE_22 = CASES / "22-429-local-ratelimit-default-bucket-consumed"
INBOUND_LOG = RECORDED / "access-inbound.log"
OUTBOUND_LOG = RECORDED / "access-outbound.log"
CONFIG_DUMP = RECORDED / "config_dump.json"
STATS = RECORDED / "stats.txt"
RECORDED_POD = DATA / "recorded" / "oom-incident" / "kubectl-get-pod-checkout.json"
SUPPORTED = (CauseStatus.CONFIRMED, CauseStatus.LIKELY)


def status_of(diagnosis: Diagnosis, cause_id: str) -> CauseStatus:
    """Return the cause's status; a cause the engine left out had nothing connecting it to the inputs."""
    for item in diagnosis.findings:
        if item.cause_id == cause_id:
            return item.status
    return CauseStatus.RULED_OUT


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def lines_of(path: Path, keep) -> str:
    return "".join(line for line in path.read_text().splitlines(keepends=True) if keep(line))


def caller_pod(namespace: str, service_account: str, pod_ip: str) -> str:
    """Return the recorded kubectl pod JSON moved to the caller's namespace, account and address."""
    pod = json.loads(RECORDED_POD.read_text())
    pod["metadata"]["namespace"] = namespace
    pod["metadata"]["name"] = f"caller-{service_account}"
    pod["spec"]["serviceAccountName"] = service_account
    pod["status"]["podIP"] = pod_ip
    pod["status"]["podIPs"] = [{"ip": pod_ip}]
    return json.dumps(pod, indent=4)


# --- the three cases --------------------------------------------------------------------------

def test_case_03_dr_conflict_on_top(engine: Engine) -> None:
    diagnosis = diagnose(engine, CASE_03)
    top = diagnosis.top

    assert top is not None
    assert top.cause_id == "dr-tls-mode-conflict"
    assert top.status == CauseStatus.CONFIRMED
    assert top.chain == ("http-503", "upstream-connect-failure", "dr-tls-mode-conflict")
    cited = {(Path(item.source).name, item.text) for item in top.evidence if item.supports}
    assert ("policy.yaml", "kind: MeshPolicy") in cited
    assert ("policy.yaml", "trafficPolicy:") in cited
    assert ("client-curl.txt", "upstream connect error or disconnect/reset before headers") in cited


def test_case_07_principal_mismatch_on_top(engine: Engine) -> None:
    diagnosis = diagnose(engine, CASE_07)
    top = diagnosis.top

    assert top is not None
    assert top.cause_id == "rbac-principal-mismatch"
    assert top.status == CauseStatus.LIKELY
    texts = [item.text for item in top.evidence if item.supports]
    assert "RBAC: access denied" in texts
    assert any("istio-ingressgateway-service-account" in text for text in texts)
    # The caller's identity is only in a comment of client.txt, so the identity check cannot decide.
    caller = outcome(top, "config.caller_principal_not_allowed")
    assert caller.result == UNKNOWN
    assert "access log" in caller.reason


def test_case_22_shared_bucket_on_top(engine: Engine) -> None:
    diagnosis = diagnose(engine, CASE_22)
    top = diagnosis.top

    assert top is not None
    assert top.cause_id == "local-rate-limit-shared-bucket"
    assert top.chain[-2:] == ("local-rate-limit-exhausted", "local-rate-limit-shared-bucket")
    assert any(item.text == "value: /mesh/bar" for item in top.evidence)
    assert outcome(top, "config.descriptors_share_bucket").result == HIT
    # stats.txt is the reporter's prose ("increases by 6 per window"), not a /stats scrape, and no
    # access log was posted: how the route bucket was spent is not evidenced, so the cause stays likely.
    drained = outcome(top, "config.route_bucket_drained_by_descriptors")
    assert drained.result == UNKNOWN
    assert "access log" in drained.reason
    assert top.status == CauseStatus.LIKELY
    assert diagnosis.symptoms == []


# --- dr-tls-mode-conflict ---------------------------------------------------------------------

def test_dr_conflict_ruled_out_by_istio_mutual(engine: Engine, tmp_path: Path) -> None:
    policy = (CASE_03 / "policy.yaml").read_text().replace(
        "    loadBalancer:\n", "    tls:\n      mode: ISTIO_MUTUAL\n    loadBalancer:\n")
    write(tmp_path, "policy.yaml", policy)
    write(tmp_path, "client-curl.txt", (CASE_03 / "client-curl.txt").read_text())
    diagnosis = diagnose(engine, tmp_path)
    item = finding(diagnosis, "dr-tls-mode-conflict")

    assert item.status == CauseStatus.RULED_OUT
    assert outcome(item, "config.dr_tls_overrides_mtls").result == MISS
    assert outcome(item, "config.dr_keeps_istio_mtls").result == HIT


def test_dr_disable_fires_with_modern_api(engine: Engine, tmp_path: Path) -> None:
    write(tmp_path, "policies.yaml", """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: orders
  namespace: orders
spec:
  host: app.orders.svc.cluster.local
  trafficPolicy:
    tls:
      mode: DISABLE
""")
    write(tmp_path, "client-curl.txt", (CASE_03 / "client-curl.txt").read_text())
    item = finding(diagnose(engine, tmp_path), "dr-tls-mode-conflict")

    assert item.status == CauseStatus.CONFIRMED
    (disable,) = [ev for ev in item.evidence if ev.text == "mode: DISABLE"]
    assert disable.line == 19


def test_dr_conflict_unknown_without_policies(engine: Engine) -> None:
    diagnosis = diagnose(engine, CASE_03 / "client-curl.txt")
    item = finding(diagnosis, "dr-tls-mode-conflict")
    rule = outcome(item, "config.dr_tls_overrides_mtls")

    assert item.status not in SUPPORTED
    assert rule.result == UNKNOWN
    assert "destinationrule" in rule.reason


# --- plaintext-to-strict ----------------------------------------------------------------------

def test_plaintext_to_strict_fires_on_recording(engine: Engine) -> None:
    item = finding(diagnose(engine, INBOUND_LOG, CONFIG_DUMP), "plaintext-to-strict")

    assert item.status == CauseStatus.CONFIRMED
    assert any("NR filter_chain_not_found" in ev.text for ev in item.evidence)
    assert any("virtualInbound" in ev.note for ev in item.evidence)


def test_plaintext_to_strict_misses_without_rejections(engine: Engine) -> None:
    diagnosis = diagnose(engine, OUTBOUND_LOG, CONFIG_DUMP)
    item = finding(diagnosis, "plaintext-to-strict")

    assert item.status not in SUPPORTED
    assert outcome(item, "config.filter_chain_not_found").result == MISS


def test_plaintext_to_strict_unknown_without_server_evidence(engine: Engine) -> None:
    diagnosis = diagnose(engine, CASE_03)
    check = outcome(finding(diagnosis, "plaintext-to-strict"), "config.filter_chain_not_found")

    assert check.result == UNKNOWN
    assert "istio-proxy" in check.reason


# --- sds-secret-not-supplied ------------------------------------------------------------------

def test_sds_warming_secret_fires(engine: Engine) -> None:
    item = finding(diagnose(engine, CONFIG_DUMP), "sds-secret-not-supplied")

    assert item.status == CauseStatus.CONFIRMED
    notes = " ".join(ev.note for ev in item.evidence)
    assert "spiffe://cluster.local/ns/default/sa/missing" in notes
    assert "outbound|8443|sds-missing|server.default.svc.cluster.local" in notes


def test_sds_corpus_warming_secret_without_users(engine: Engine) -> None:
    item = finding(diagnose(engine, CORPUS / "envoy-admin" / "09-config-dump-secrets-istio-1.18-expired-default-warming.json",
                           CORPUS / "istioctl" / "14-proxy-config-secret-1.24-warming.txt"), "sds-secret-not-supplied")

    assert item.status == CauseStatus.LIKELY
    assert outcome(item, "config.warming_secret_referenced").result == UNKNOWN


def test_sds_all_secrets_active(engine: Engine) -> None:
    diagnosis = diagnose(engine, CORPUS / "envoy-admin" / "10-config-dump-secrets-spire-trust-bundles-istio-1.24.json")

    assert status_of(diagnosis, "sds-secret-not-supplied") == CauseStatus.RULED_OUT


def test_sds_unknown_without_secrets(engine: Engine) -> None:
    spec = engine.registry.get("config.sds_secret_warming")
    result = spec.function(FactSet(), {})

    assert result.result == UNKNOWN
    assert "istioctl proxy-config secret" in result.reason


# --- RBAC -------------------------------------------------------------------------------------

def test_no_allow_matched_fires_on_recording(engine: Engine) -> None:
    item = finding(diagnose(engine, INBOUND_LOG, CONFIG_DUMP), "rbac-no-allow-matched")

    assert item.status == CauseStatus.CONFIRMED
    assert any("rbac_access_denied_matched_policy[none]" in ev.text for ev in item.evidence)


def test_no_allow_matched_misses_without_none_denials(engine: Engine, tmp_path: Path) -> None:
    write(tmp_path, "inbound.log", lines_of(INBOUND_LOG, lambda line: "[none]" not in line))
    item = finding(diagnose(engine, tmp_path, CONFIG_DUMP), "rbac-no-allow-matched")

    assert item.status not in SUPPORTED
    assert outcome(item, "config.rbac_denied").result == MISS


def test_no_allow_matched_unknown_from_body_only(engine: Engine) -> None:
    item = finding(diagnose(engine, CASE_07 / "client.txt"), "rbac-no-allow-matched")
    check = outcome(item, "config.rbac_denied")

    assert check.result == UNKNOWN
    assert "does not say which policy" in check.reason


def test_principal_mismatch_fires_with_caller_pod(engine: Engine, tmp_path: Path) -> None:
    # Both recorded callers connect from 127.0.0.1; the denied one is team-b/default.
    write(tmp_path, "caller-pod.json", caller_pod("team-b", "default", "127.0.0.1"))
    item = finding(diagnose(engine, INBOUND_LOG, CONFIG_DUMP, tmp_path), "rbac-principal-mismatch")

    assert item.status == CauseStatus.CONFIRMED
    notes = [ev.note for ev in item.evidence if ev.supports]
    assert any("is cluster.local/ns/team-b/sa/default" in note for note in notes)
    assert any("allows principal exact spiffe://cluster.local/ns/default/sa/frontend" in note for note in notes)
    assert item.chain == ("http-403", "rbac-no-allow-matched", "rbac-principal-mismatch")


def test_principal_mismatch_misses_for_allowed_caller(engine: Engine, tmp_path: Path) -> None:
    write(tmp_path, "caller-pod.json", caller_pod("default", "frontend", "127.0.0.1"))
    item = finding(diagnose(engine, INBOUND_LOG, CONFIG_DUMP, tmp_path), "rbac-principal-mismatch")

    assert item.status not in (CauseStatus.CONFIRMED,)
    check = outcome(item, "config.caller_principal_not_allowed")
    assert check.result == MISS
    assert "another condition" in check.reason


def test_principal_mismatch_unknown_without_pods(engine: Engine) -> None:
    item = finding(diagnose(engine, INBOUND_LOG, CONFIG_DUMP), "rbac-principal-mismatch")
    check = outcome(item, "config.caller_principal_not_allowed")

    assert check.result == UNKNOWN
    assert "127.0.0.1" in check.reason
    assert "kubectl get pods" in check.reason


def test_principals_without_mtls_fires_when_permissive(engine: Engine, tmp_path: Path) -> None:
    write(tmp_path, "policy.yaml", (CASE_07 / "policy.yaml").read_text())
    write(tmp_path, "client.txt", (CASE_07 / "client.txt").read_text())
    write(tmp_path, "peer.yaml", """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: PERMISSIVE
""")
    item = finding(diagnose(engine, tmp_path), "rbac-principals-without-mtls")

    assert item.status == CauseStatus.CONFIRMED
    assert any(ev.text == "mode: PERMISSIVE" for ev in item.evidence)


def test_principals_without_mtls_ruled_out_by_mtls_sni(engine: Engine) -> None:
    item = finding(diagnose(engine, INBOUND_LOG, CONFIG_DUMP), "rbac-principals-without-mtls")

    assert item.status == CauseStatus.RULED_OUT
    assert outcome(item, "config.denied_requests_used_mtls").result == HIT


def test_principals_without_mtls_unknown_without_peer_policy(engine: Engine) -> None:
    item = finding(diagnose(engine, CASE_07), "rbac-principals-without-mtls")
    check = outcome(item, "config.mtls_not_in_force_for_principals")

    assert check.result == UNKNOWN
    assert "peerauthentication" in check.reason


def test_deny_matched_names_policy_and_rule(engine: Engine) -> None:
    item = finding(diagnose(engine, INBOUND_LOG, CONFIG_DUMP), "rbac-deny-matched")

    assert item.status == CauseStatus.CONFIRMED
    assert any("ns[default]-policy[deny-admin]-rule[0]" in ev.note and "/admin" in ev.text for ev in item.evidence)
    assert any("path exact:/admin" in ev.note for ev in item.evidence)


def test_deny_matched_cites_authorization_policy_rule(engine: Engine, tmp_path: Path) -> None:
    write(tmp_path, "inbound.log", lines_of(INBOUND_LOG, lambda line: "/admin" in line))
    write(tmp_path, "deny.yaml", """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-admin
  namespace: default
spec:
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin"]
""")
    item = finding(diagnose(engine, tmp_path), "rbac-deny-matched")

    assert item.status == CauseStatus.CONFIRMED
    (rule,) = [ev for ev in item.evidence if ev.note.startswith("rule 0 of AuthorizationPolicy default/deny-admin")]
    assert rule.line == 9
    assert rule.text == "- to:"


def test_deny_matched_misses_without_named_denial(engine: Engine, tmp_path: Path) -> None:
    write(tmp_path, "inbound.log", lines_of(INBOUND_LOG, lambda line: "deny-admin" not in line))
    diagnosis = diagnose(engine, tmp_path, CONFIG_DUMP)

    assert status_of(diagnosis, "rbac-deny-matched") == CauseStatus.RULED_OUT


def test_deny_matched_unknown_from_body_only(engine: Engine) -> None:
    item = finding(diagnose(engine, CASE_07 / "client.txt"), "rbac-deny-matched")
    check = outcome(item, "config.rbac_denied")

    assert item.status == CauseStatus.UNKNOWN
    assert check.result == UNKNOWN


# --- local rate limits ------------------------------------------------------------------------

def test_rate_limit_exhausted_fires_on_recording(engine: Engine) -> None:
    diagnosis = diagnose(engine, INBOUND_LOG, CONFIG_DUMP)
    item = finding(diagnosis, "local-rate-limit-exhausted")

    assert item.status == CauseStatus.CONFIRMED
    assert any("429 RL local_rate_limited" in ev.text for ev in item.evidence)


def test_rate_limit_exhausted_misses_upstream_429s(engine: Engine) -> None:
    item = finding(diagnose(engine, OUTBOUND_LOG, CONFIG_DUMP), "local-rate-limit-exhausted")

    assert item.status not in SUPPORTED
    assert outcome(item, "config.local_rate_limited").result == MISS


def test_rate_limit_exhausted_unknown_without_traffic(engine: Engine) -> None:
    item = finding(diagnose(engine, CONFIG_DUMP), "local-rate-limit-exhausted")
    check = outcome(item, "config.local_rate_limited")

    assert item.status == CauseStatus.POSSIBLE
    assert check.result == UNKNOWN
    assert "kubectl logs POD -c istio-proxy" in check.reason


def test_shared_bucket_fires_on_recording(engine: Engine) -> None:
    diagnosis = diagnose(engine, INBOUND_LOG, CONFIG_DUMP)
    item = finding(diagnosis, "local-rate-limit-shared-bucket")

    assert item.status == CauseStatus.CONFIRMED
    drained = outcome(item, "config.route_bucket_drained_by_descriptors")
    assert drained.result == HIT
    assert any("limited after only 4 of 5 route tokens" in ev.note for ev in drained.evidence)
    exhausted = finding(diagnosis, "local-rate-limit-exhausted")
    assert diagnosis.findings.index(item) < diagnosis.findings.index(exhausted)


def test_shared_bucket_ruled_out_when_not_consumed(engine: Engine, tmp_path: Path) -> None:
    text = (CASE_22 / "envoyfilter.yaml").read_text().replace(
        "                descriptors:\n",
        "                always_consume_default_token_bucket: false\n                descriptors:\n")
    write(tmp_path, "envoyfilter.yaml", text)
    diagnosis = diagnose(engine, tmp_path)
    spec = engine.registry.get("config.descriptors_share_bucket")
    facts = read_paths([tmp_path], engine.rulebook.signatures).facts
    check = spec.function(facts, {})

    assert status_of(diagnosis, "local-rate-limit-shared-bucket") == CauseStatus.RULED_OUT
    assert check.result == MISS
    assert any("always_consume_default_token_bucket is false" in ev.note for ev in check.evidence)


def test_shared_bucket_unknown_without_config(engine: Engine) -> None:
    item = finding(diagnose(engine, INBOUND_LOG), "local-rate-limit-shared-bucket")
    check = outcome(item, "config.descriptors_share_bucket")

    assert check.result == UNKNOWN
    assert "envoyfilter" in check.reason


def test_shadow_mode_fires_with_upstream_429s(engine: Engine) -> None:
    item = finding(diagnose(engine, OUTBOUND_LOG, CONFIG_DUMP), "local-rate-limit-shadow-mode")

    assert item.status == CauseStatus.CONFIRMED
    assert any("route shadow" in ev.note and "enforced for 0%" in ev.note for ev in item.evidence)
    assert any("the upstream application answered 429" in ev.note for ev in item.evidence)


def test_shadow_mode_ruled_out_when_enforced(engine: Engine) -> None:
    diagnosis = diagnose(engine, CASE_22, INBOUND_LOG)

    assert status_of(diagnosis, "local-rate-limit-shadow-mode") == CauseStatus.RULED_OUT


def test_shadow_mode_unknown_without_config(engine: Engine) -> None:
    item = finding(diagnose(engine, OUTBOUND_LOG), "local-rate-limit-shadow-mode")
    check = outcome(item, "config.local_rate_limit_shadow")

    assert check.result == UNKNOWN
    assert "local rate limit config" in check.reason


# --- stale-proxy-config -----------------------------------------------------------------------

def test_stale_proxy_fires_on_corpus(engine: Engine) -> None:
    item = finding(diagnose(engine, CORPUS / "istioctl" / "02-proxy-status-1.1-stale-durations.txt"),
                   "stale-proxy-config")

    assert item.status == CauseStatus.CONFIRMED
    assert any(ev.note == "proxy proxy1: CDS STALE (1h0m0s) against pilot1" for ev in item.evidence)


def test_stale_proxy_misses_when_synced(engine: Engine, tmp_path: Path) -> None:
    source = CORPUS / "istioctl" / "06-proxy-status-1.18-ecds-ignored.txt"
    write(tmp_path, "proxy-status.txt", lines_of(source, lambda line: line.startswith(("NAME", "proxy4"))))
    diagnosis = diagnose(engine, tmp_path, STATS)

    assert status_of(diagnosis, "stale-proxy-config") == CauseStatus.RULED_OUT


def test_stale_proxy_unknown_for_subscribed_types_layout(engine: Engine) -> None:
    # The client's 503 makes the cause relevant, so its unknown check is listed in the coverage.
    diagnosis = diagnose(engine, CORPUS / "istioctl" / "07-proxy-status-1.22-subscribed-types.txt",
                         CASE_03 / "client-curl.txt")
    (entry,) = [item for item in diagnosis.coverage.not_checked if item.check_id == "config.proxy_not_synced"]

    assert status_of(diagnosis, "stale-proxy-config") == CauseStatus.UNKNOWN
    assert "--verbose" in entry.reason


@pytest.mark.parametrize(("host", "known", "expected"), [
    ("app", None, "orders"),
    ("app.shop", {"shop"}, "shop"),
    ("example.com", {"shop"}, None),
    ("app.shop.svc", None, "shop"),
    ("app.shop.svc.cluster.local", None, "shop"),
    ("*.shop.svc.cluster.local", None, "shop"),
    ("*.example.com", None, None),
])
def test_destination_rule_host_namespace(host: str, known: set[str] | None, expected: str | None) -> None:
    assert host_namespace(host, "orders", known) == expected
