"""JWT and TLS rules on real Envoy, openssl and case inputs.

Every cause has a case that fires it, one that does not, and one where its
input is absent so its check reports unknown with the reason. The rules run
with the symptom and upstream rules they link to and the whole signature
catalogue. Other rule files are left out, so these tests exercise only the
identity causes and their chains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from doctor.checks import HIT, MISS, UNKNOWN, CheckRegistry, CheckResult, identity, symptoms, traffic
from doctor.diagnosis import CauseStatus, Diagnosis, Finding
from doctor.engine import diagnose as run_engine
from doctor.parsers.signatures import load_catalogue
from doctor.readers import read_paths
from doctor.rules import Rulebook, load_rule_files
from doctor.scan import load_engine, scan_paths

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
DATA = ROOT / "tests" / "data"
CASES = DATA / "cases"
REPLIES = DATA / "recorded" / "envoy-local-replies"
CURL = REPLIES / "curl"
TLS = DATA / "recorded" / "tls"
CORPUS = DATA / "corpus"

CASE_12 = CASES / "12-401-remote-jwks-cluster-missing-tls"
CASE_15 = CASES / "15-401-keycloak-issuer-mismatch-jwks-selfsigned"
CASE_17 = CASES / "17-tls-istio-selfsigned-root-ca-expired"
CLAIMS_ONLY = CASE_15 / "token-claims.json"
ENVOY_CONFIG = REPLIES / "envoy-config.yaml"
ISTIO_POLICIES = REPLIES / "istio-require-jwt.yaml"


@dataclass(frozen=True)
class Engine:
    rulebook: Rulebook
    registry: CheckRegistry


@pytest.fixture(scope="module")
def engine() -> Engine:
    registry = CheckRegistry()
    symptoms.register(registry)
    traffic.register(registry)
    identity.register(registry)
    files = [RULES / name for name in ("symptoms.yaml", "upstream.yaml", "jwt.yaml", "tls.yaml")]
    book = load_rule_files(files, registry)
    entries, problems = load_catalogue(RULES / "signatures.yaml")
    assert problems == []
    book.signatures.extend(entries)
    return Engine(book, registry)


def diagnose(engine: Engine, *paths: Path) -> Diagnosis:
    read = read_paths(list(paths), engine.rulebook.signatures)
    return run_engine(read.facts, engine.rulebook, engine.registry, read.observations)


def run_check(engine: Engine, check_id: str, args: dict[str, Any], *paths: Path) -> CheckResult:
    read = read_paths(list(paths), engine.rulebook.signatures)
    spec = engine.registry.get(check_id)
    assert spec is not None
    return spec.function(read.facts, args)


def finding(diagnosis: Diagnosis, cause_id: str) -> Finding:
    for item in diagnosis.findings:
        if item.cause_id == cause_id:
            return item
    raise AssertionError(f"no finding for {cause_id}; findings: "
                         f"{[(item.cause_id, item.status.value) for item in diagnosis.findings]}")


def access_log_lines(tmp_path: Path, fragment: str) -> Path:
    """Write the recorded access-log lines of one upstream or path into a file of their own."""
    source = REPLIES / "access-istio-text.log"
    lines = [line for line in source.read_text().splitlines() if fragment in line]
    assert lines, fragment
    target = tmp_path / f"access-{fragment.strip('/').replace('/', '-')}.log"
    target.write_text("\n".join(lines) + "\n")
    return target


def command_line_only(tmp_path: Path, recording: Path) -> Path:
    """Keep only the curl command of a transcript: the token without the reply or its time."""
    target = tmp_path / f"{recording.stem}-command.txt"
    target.write_text(recording.read_text().splitlines()[0] + "\n")
    return target


def notes(result: CheckResult) -> str:
    return " ".join(item.note for item in result.evidence)


# --- cases ----------------------------------------------------------------------


def test_case_12_jwks_cluster_without_tls_on_top(engine: Engine) -> None:
    diagnosis = diagnose(engine, CASE_12)
    top = diagnosis.findings[0]

    assert top.cause_id == "jwks-cluster-without-tls"
    assert top.status == CauseStatus.CONFIRMED
    assert top.chain == ("http-401", "jwks-fetch-failed", "jwks-cluster-without-tls")
    assert finding(diagnosis, "jwks-fetch-failed").status == CauseStatus.LIKELY
    assert {(Path(item.source).name, item.line) for item in top.evidence} >= {
        ("envoy-excerpt.yaml", 7), ("envoy-excerpt.yaml", 13)}


def test_case_15_issuer_not_configured_on_top(engine: Engine) -> None:
    diagnosis = diagnose(engine, CASE_15)
    top = diagnosis.findings[0]
    sources = {Path(item.source).name for item in top.evidence if item.supports}

    assert top.cause_id == "jwt-issuer-not-configured"
    assert top.status == CauseStatus.LIKELY
    assert sources == {"token-claims.json", "policy-before.yaml", "policy-after.yaml"}
    assert finding(diagnosis, "jwks-fetch-failed").status == CauseStatus.POSSIBLE


def test_case_15_missing_evidence_documented(engine: Engine) -> None:
    """Case 15 has no 401 line: only the token and the policies show the mismatch."""
    diagnosis = diagnose(engine, CASE_15)
    rejected = next(check for check in finding(diagnosis, "jwt-issuer-not-configured").checks
                    if check.check_id == "identity.jwt_rejected")

    assert "http-401" not in [symptom.symptom_id for symptom in diagnosis.symptoms]
    assert rejected.result == MISS


def test_case_17_mesh_root_ca_expired_on_top(engine: Engine) -> None:
    diagnosis = diagnose(engine, CASE_17)
    top = diagnosis.findings[0]
    root_evidence = [item for item in top.evidence if Path(item.source).name == "root-cert.txt"]

    assert top.cause_id == "mesh-root-ca-expired"
    assert top.status == CauseStatus.CONFIRMED
    assert top.chain == ("http-503", "upstream-connect-failure", "cert-expired",
                         "mesh-root-ca-expired")
    assert root_evidence[0].text == "Not After : Jun  2 14:02:46 2019 GMT"
    assert "2 h 49 min before the first failure" in root_evidence[0].note


@pytest.mark.parametrize(("case", "cause"), [
    (CASE_12, "jwks-cluster-without-tls"),
    (CASE_15, "jwt-issuer-not-configured"),
    (CASE_17, "mesh-root-ca-expired"),
])
def test_case_on_top_with_every_shipped_rule(case: Path, cause: str) -> None:
    diagnosis = scan_paths([case], engine=load_engine())

    assert diagnosis.findings[0].cause_id == cause


# --- jwt-expired ------------------------------------------------------------------


def test_jwt_expired_fires(engine: Engine) -> None:
    item = finding(diagnose(engine, CURL / "jwt-expired.txt"), "jwt-expired")

    assert item.status == CauseStatus.CONFIRMED
    assert any("1 h 0 min before the reply's Date header" in evidence.note
               for evidence in item.evidence)


def test_jwt_expired_not_for_valid_token(engine: Engine) -> None:
    result = run_check(engine, "identity.token_expired", {}, CURL / "jwt-valid.txt")
    rejected = run_check(engine, "identity.jwt_rejected", {"reason": "expired"},
                         CURL / "jwt-valid.txt")

    assert result.result == MISS
    assert rejected.result == MISS
    assert result.evidence[0].supports is False


def test_jwt_expired_unknown_without_request_time(engine: Engine, tmp_path: Path) -> None:
    result = run_check(engine, "identity.token_expired", {},
                       command_line_only(tmp_path, CURL / "jwt-expired.txt"))

    assert result.result == UNKNOWN
    assert "Date header" in result.reason


def test_jwt_expired_uses_access_log_time(engine: Engine, tmp_path: Path) -> None:
    command = command_line_only(tmp_path, CURL / "jwt-expired.txt")
    access_log = access_log_lines(tmp_path, "jwt_authn_access_denied{Jwt_is_expired}")

    result = run_check(engine, "identity.token_expired", {}, command, access_log)

    assert result.result == HIT
    assert "the 401 in the access log" in notes(result)


# --- jwt-not-yet-valid and clock-drift --------------------------------------------


def test_jwt_not_yet_valid_fires(engine: Engine) -> None:
    item = finding(diagnose(engine, CURL / "jwt-not-yet-valid.txt"), "jwt-not-yet-valid")

    assert item.status == CauseStatus.CONFIRMED


def test_jwt_not_yet_valid_not_without_nbf(engine: Engine) -> None:
    result = run_check(engine, "identity.token_not_yet_valid", {}, CURL / "jwt-expired.txt")

    assert result.result == MISS
    assert "nbf" in result.reason


def test_jwt_not_yet_valid_unknown_without_time(engine: Engine, tmp_path: Path) -> None:
    result = run_check(engine, "identity.token_not_yet_valid", {},
                       command_line_only(tmp_path, CURL / "jwt-not-yet-valid.txt"))

    assert result.result == UNKNOWN


def test_clock_drift_fires_with_measured_skew(engine: Engine) -> None:
    diagnosis = diagnose(engine, CURL / "jwt-not-yet-valid.txt")
    item = finding(diagnosis, "clock-drift")

    assert item.status == CauseStatus.CONFIRMED
    assert item.chain == ("http-401", "jwt-not-yet-valid", "clock-drift")
    assert diagnosis.findings[0].cause_id == "clock-drift"
    assert "clock skew of 1 h 0 min (3600 s)" in item.evidence[0].note


def test_clock_drift_not_for_token_issued_before(engine: Engine) -> None:
    result = run_check(engine, "identity.clock_skew", {"leeway_seconds": 60},
                       CURL / "jwt-expired.txt")

    assert result.result == MISS


def test_clock_drift_unknown_without_token(engine: Engine) -> None:
    result = run_check(engine, "identity.clock_skew", {}, CASE_12 / "client.txt")

    assert result.result == UNKNOWN
    assert "no JWT among the inputs" in result.reason


def test_clock_drift_leeway_respected(engine: Engine) -> None:
    result = run_check(engine, "identity.clock_skew", {"leeway_seconds": 7200},
                       CURL / "jwt-not-yet-valid.txt")

    assert result.result == MISS


# --- jwt-issuer-not-configured ----------------------------------------------------


def test_issuer_not_configured_fires_on_envoy(engine: Engine) -> None:
    item = finding(diagnose(engine, CURL / "jwt-wrong-issuer.txt", ENVOY_CONFIG),
                   "jwt-issuer-not-configured")

    assert item.status == CauseStatus.CONFIRMED


def test_issuer_not_configured_not_for_valid(engine: Engine) -> None:
    result = run_check(engine, "identity.token_issuer_not_configured", {},
                       CURL / "jwt-valid.txt", ENVOY_CONFIG)

    assert result.result == MISS


def test_issuer_not_configured_unknown_without_config(engine: Engine) -> None:
    result = run_check(engine, "identity.token_issuer_not_configured", {},
                       CURL / "jwt-wrong-issuer.txt")

    assert result.result == UNKNOWN
    assert "kubectl get requestauthentication" in result.reason


# --- jwt-kid-not-in-jwks ----------------------------------------------------------


def test_kid_not_in_jwks_fires(engine: Engine) -> None:
    item = finding(diagnose(engine, CURL / "jwt-unknown-kid.txt", REPLIES / "jwks.json"),
                   "jwt-kid-not-in-jwks")

    assert item.status == CauseStatus.CONFIRMED
    assert any("'key-rotated' is not among the JWKS key ids 'key-1'" in evidence.note
               for evidence in item.evidence)


def test_kid_in_jwks_not_fired(engine: Engine) -> None:
    result = run_check(engine, "identity.token_kid_not_in_jwks", {},
                       CURL / "jwt-valid.txt", REPLIES / "jwks.json")

    assert result.result == MISS


def test_kid_unknown_without_jwks(engine: Engine) -> None:
    result = run_check(engine, "identity.token_kid_not_in_jwks", {}, CURL / "jwt-unknown-kid.txt")

    assert result.result == UNKNOWN
    assert "no JWKS" in result.reason


# --- jwks-fetch-failed and jwks-cluster-without-tls -------------------------------


def test_jwks_fetch_failed_fires_on_recording(engine: Engine) -> None:
    diagnosis = diagnose(engine, CURL / "jwt-remote-issuer.txt", ENVOY_CONFIG)

    assert finding(diagnosis, "jwks-fetch-failed").status == CauseStatus.LIKELY
    assert finding(diagnosis, "jwks-cluster-without-tls").status == CauseStatus.CONFIRMED
    assert diagnosis.findings[0].cause_id == "jwks-cluster-without-tls"


def test_jwks_fetch_failed_not_for_valid(engine: Engine) -> None:
    result = run_check(engine, "identity.jwt_rejected", {"reason": "jwks-fetch-failed"},
                       CURL / "jwt-valid.txt")

    assert result.result == MISS


def test_jwks_fetch_failed_unknown_without_logs(engine: Engine) -> None:
    result = run_check(engine, "identity.jwt_rejected", {"reason": "jwks-fetch-failed"},
                       CLAIMS_ONLY)

    assert result.result == UNKNOWN
    assert "istio-proxy" in result.reason


def test_jwt_rejected_miss_on_answered_request(engine: Engine) -> None:
    result = run_check(engine, "identity.jwt_rejected", {"reason": "expired"},
                       CURL / "jwt-istio-valid-token.txt")

    assert result.result == MISS


def test_jwks_cluster_with_local_jwks_not_fired(engine: Engine) -> None:
    dump = CORPUS / "envoy-admin" / "05-config-dump-jwt-authn-filter-istio-1.24.2.yaml"

    result = run_check(engine, "identity.jwks_cluster_without_tls", {}, dump)

    assert result.result == MISS
    assert "local_jwks" in result.reason


def test_jwks_cluster_unknown_without_envoy_config(engine: Engine) -> None:
    result = run_check(engine, "identity.jwks_cluster_without_tls", {}, CASE_12 / "client.txt")

    assert result.result == UNKNOWN
    assert "istioctl proxy-config" in result.reason


# --- jwt-missing --------------------------------------------------------------------


def test_jwt_missing_fires(engine: Engine) -> None:
    item = finding(diagnose(engine, CURL / "jwt-missing.txt"), "jwt-missing")

    assert item.status == CauseStatus.CONFIRMED


def test_jwt_missing_not_with_token(engine: Engine) -> None:
    result = run_check(engine, "identity.jwt_rejected", {"reason": "missing"},
                       CURL / "jwt-expired.txt")

    assert result.result == MISS


def test_jwt_missing_unknown_without_logs(engine: Engine) -> None:
    result = run_check(engine, "identity.jwt_rejected", {"reason": "missing"}, CLAIMS_ONLY)

    assert result.result == UNKNOWN


# --- jwt-audience-mismatch --------------------------------------------------------


def test_audience_mismatch_fires_as_403(engine: Engine) -> None:
    diagnosis = diagnose(engine, CURL / "jwt-wrong-audience.txt", ENVOY_CONFIG)
    item = finding(diagnosis, "jwt-audience-mismatch")

    assert item.status == CauseStatus.CONFIRMED
    assert item.chain == ("http-403", "jwt-audience-mismatch")
    assert "http-401" not in [symptom.symptom_id for symptom in diagnosis.symptoms]


def test_audience_allowed_not_fired(engine: Engine) -> None:
    result = run_check(engine, "identity.token_audience_not_allowed", {},
                       CURL / "jwt-valid.txt", ENVOY_CONFIG)

    assert result.result == MISS


def test_audience_unknown_without_config(engine: Engine) -> None:
    result = run_check(engine, "identity.token_audience_not_allowed", {},
                       CURL / "jwt-wrong-audience.txt")

    assert result.result == UNKNOWN


def test_audience_from_request_authentication(engine: Engine) -> None:
    result = run_check(engine, "identity.token_audience_not_allowed", {},
                       CURL / "jwt-wrong-audience.txt", ISTIO_POLICIES)

    assert result.result == HIT
    assert "RequestAuthentication shop/orders-jwt allows only ['orders']" in notes(result)


# --- jwt-missing-request-principals -------------------------------------------------


def test_missing_request_principals_fires(engine: Engine) -> None:
    item = finding(diagnose(engine, CURL / "jwt-istio-missing-token.txt", ISTIO_POLICIES),
                   "jwt-missing-request-principals")

    assert item.status == CauseStatus.CONFIRMED
    assert any("requestPrincipals" in evidence.text for evidence in item.evidence)


def test_missing_request_principals_ruled_out_with_token(engine: Engine) -> None:
    item = finding(diagnose(engine, CURL / "rbac-denied-with-token.txt", ISTIO_POLICIES),
                   "jwt-missing-request-principals")

    assert item.status == CauseStatus.RULED_OUT


def test_missing_request_principals_unknown_without_policy(engine: Engine) -> None:
    result = run_check(engine, "identity.request_principals_required", {},
                       CURL / "jwt-istio-missing-token.txt")

    assert result.result == UNKNOWN
    assert "authorizationpolicy" in result.reason


def test_rbac_denial_in_access_log_is_unknown(engine: Engine, tmp_path: Path) -> None:
    access_log = access_log_lines(tmp_path, "/jwt/istio/")

    result = run_check(engine, "identity.rbac_denied_without_token", {}, access_log)

    assert result.result == UNKNOWN
    assert "curl -sv" in result.reason


# --- cert-expired and mesh-root-ca-expired ---------------------------------------------


def test_cert_expired_fires_on_s_client(engine: Engine) -> None:
    diagnosis = diagnose(engine, TLS / "s_client-expired-server.txt")
    item = finding(diagnosis, "cert-expired")

    assert item.status == CauseStatus.CONFIRMED
    assert "tls-handshake-failure" in [symptom.symptom_id for symptom in diagnosis.symptoms]
    assert item.chain == ("tls-handshake-failure", "cert-expired")


def test_cert_expired_fires_on_access_log(engine: Engine, tmp_path: Path) -> None:
    access_log = access_log_lines(tmp_path, "/upstream/tls-expired/")

    result = run_check(engine, "identity.tls_failure", {"reason": "expired"}, access_log)

    assert result.result == HIT


def test_cert_valid_at_failure_not_fired(engine: Engine, tmp_path: Path) -> None:
    access_log = access_log_lines(tmp_path, "/upstream/tls-other-name/")

    result = run_check(engine, "identity.certificate_expired", {}, TLS / "server.crt", access_log)

    assert result.result == MISS
    assert "first failure" in result.reason


def test_cert_expired_unknown_without_certificates(engine: Engine) -> None:
    result = run_check(engine, "identity.certificate_expired", {}, CASE_12 / "client.txt")

    assert result.result == UNKNOWN
    assert "istioctl proxy-config secret" in result.reason


def test_mesh_root_expired_from_s_client_depth(engine: Engine) -> None:
    result = run_check(engine, "identity.ca_certificate_expired", {},
                       TLS / "s_client-expired-root.txt")

    assert result.result == HIT
    assert "depth above 0" in notes(result)


def test_mesh_root_valid_not_fired(engine: Engine, tmp_path: Path) -> None:
    access_log = access_log_lines(tmp_path, "/upstream/tls-other-name/")

    result = run_check(engine, "identity.ca_certificate_expired", {}, TLS / "root-ca.crt",
                       access_log)

    assert result.result == MISS


def test_mesh_root_unknown_with_leaf_only(engine: Engine, tmp_path: Path) -> None:
    access_log = access_log_lines(tmp_path, "/upstream/tls-other-name/")

    result = run_check(engine, "identity.ca_certificate_expired", {}, TLS / "server.crt",
                       access_log)

    assert result.result == UNKNOWN
    assert "istio-ca-root-cert" in result.reason


# --- unknown-ca, san-mismatch, plaintext-against-tls ----------------------------------


@pytest.mark.parametrize(("cause", "recording"), [
    ("unknown-ca", "s_client-unknown-ca.txt"),
    ("unknown-ca", "s_client-tls12-client-cert-unknown-ca.txt"),
    ("unknown-ca", "s_client-envoy-tls13-client-cert-other-ca.txt"),
    ("san-mismatch", "s_client-san-mismatch.txt"),
    ("plaintext-against-tls", "s_client-plaintext-server.txt"),
])
def test_tls_cause_fires_on_s_client(engine: Engine, cause: str, recording: str) -> None:
    item = finding(diagnose(engine, TLS / recording), cause)

    assert item.status == CauseStatus.CONFIRMED


@pytest.mark.parametrize(("reason", "upstream"), [
    ("unknown-ca", "/upstream/tls12-unknown-ca-client/"),
    ("san-mismatch", "/upstream/tls-other-name/"),
    ("wrong-version", "/upstream/tls-to-plaintext/"),
    ("expired", "/upstream/tls12-expired-client-cert/"),
])
def test_tls_reason_in_access_log(engine: Engine, tmp_path: Path, reason: str,
                                  upstream: str) -> None:
    result = run_check(engine, "identity.tls_failure", {"reason": reason},
                       access_log_lines(tmp_path, upstream))

    assert result.result == HIT


@pytest.mark.parametrize("reason", ["expired", "unknown-ca", "san-mismatch", "wrong-version"])
def test_tls_reason_not_on_verified_handshake(engine: Engine, reason: str) -> None:
    result = run_check(engine, "identity.tls_failure", {"reason": reason},
                       TLS / "s_client-verified.txt")

    assert result.result == MISS


@pytest.mark.parametrize("reason", ["expired", "unknown-ca", "san-mismatch", "wrong-version"])
def test_tls_reason_unknown_without_tls_inputs(engine: Engine, reason: str) -> None:
    result = run_check(engine, "identity.tls_failure", {"reason": reason}, CLAIMS_ONLY)

    assert result.result == UNKNOWN
    assert "openssl s_client" in result.reason


def test_unknown_reason_argument_reported(engine: Engine) -> None:
    result = run_check(engine, "identity.tls_failure", {"reason": "bad-luck"},
                       TLS / "s_client-verified.txt")

    assert result.result == UNKNOWN
    assert "expected one of" in result.reason
