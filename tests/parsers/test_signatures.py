"""The error-signature catalogue against real Envoy 1.40, istio-agent and kubectl output."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from doctor.model import Document
from doctor.parsers.signatures import (
    KIND,
    Signature,
    SignatureMatch,
    leading_timestamp,
    load_catalogue,
    scan,
)
from doctor.redact import SIGNATURE_MASK

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "rules" / "signatures.yaml"
REPLIES = ROOT / "tests" / "data" / "recorded" / "envoy-local-replies"
CASES = ROOT / "tests" / "data" / "cases"
CORPUS = ROOT / "tests" / "data" / "corpus"


@pytest.fixture(scope="module")
def catalogue() -> list[Signature]:
    entries, problems = load_catalogue(CATALOGUE)
    assert problems == []
    return entries


def _scan_file(path: Path, catalogue: list[Signature]) -> list[SignatureMatch]:
    result = scan(Document(str(path), path.read_text()), catalogue)
    assert result.kind == KIND
    assert result.problems == []
    return result.facts


def _ids(matches: list[SignatureMatch]) -> set[str]:
    return {match.signature_id for match in matches}


@pytest.mark.parametrize(("recording", "signature_id"), [
    ("jwt-expired", "envoy-jwt-expired"),
    ("jwt-not-yet-valid", "envoy-jwt-not-yet-valid"),
    ("jwt-wrong-issuer", "envoy-jwt-issuer-not-configured"),
    ("jwt-bad-signature", "envoy-jwt-verification-fails"),
    ("jwt-remote-issuer", "envoy-jwks-remote-fetch-failed"),
    ("jwt-unknown-kid", "envoy-jwks-kid-not-found"),
    ("jwt-wrong-audience", "envoy-jwt-audience-not-allowed"),
    ("jwt-missing", "envoy-jwt-missing"),
    ("jwt-malformed", "envoy-jwt-malformed"),
    ("jwt-istio-missing-token", "envoy-rbac-access-denied"),
    ("rbac-no-allow-matched", "envoy-rbac-access-denied"),
    ("rbac-deny-matched", "envoy-rbac-access-denied"),
    ("ratelimit-second", "envoy-local-rate-limited"),
    ("upstream-no-endpoints", "envoy-no-healthy-upstream"),
    ("upstream-closed-port", "envoy-upstream-reset-before-headers"),
    ("upstream-overflow", "envoy-upstream-reset-overflow"),
])
def test_local_reply_matches_signature(catalogue: list[Signature], recording: str,
                                       signature_id: str) -> None:
    matches = _scan_file(REPLIES / "curl" / f"{recording}.txt", catalogue)

    assert signature_id in _ids(matches)


@pytest.mark.parametrize("recording", ["jwt-valid", "jwt-istio-valid-token", "ratelimit-first"])
def test_successful_reply_matches_nothing(catalogue: list[Signature], recording: str) -> None:
    assert _scan_file(REPLIES / "curl" / f"{recording}.txt", catalogue) == []


@pytest.mark.parametrize(("recording", "reason"), [
    ("upstream-closed-port", "remote connection failure"),
    ("upstream-closes-connection", "connection termination"),
    ("upstream-overflow", "overflow"),
    ("upstream-plaintext-to-tls", "connection termination"),
])
def test_reset_reason_captured(catalogue: list[Signature], recording: str, reason: str) -> None:
    matches = _scan_file(REPLIES / "curl" / f"{recording}.txt", catalogue)
    reset = [match for match in matches
             if match.signature_id == "envoy-upstream-reset-before-headers"]

    assert len(reset) == 1
    assert reset[0].groups["reason"] == reason
    assert "transport_failure_reason" not in reset[0].groups


@pytest.mark.parametrize(("recording", "transport_reason", "tls_signature"), [
    ("upstream-closed-port-with-transport-reason", "delayed connect error: Connection refused",
     None),
    ("upstream-tls-expired-with-transport-reason", "CERTIFICATE_VERIFY_FAILED",
     "tls-peer-certificate-expired"),
    ("upstream-tls-to-plaintext-with-transport-reason", "WRONG_VERSION_NUMBER",
     "tls-wrong-version-number"),
    ("upstream-tls12-unknown-ca-client-with-transport-reason", "TLSV1_ALERT_UNKNOWN_CA",
     "tls-alert-unknown-ca"),
])
def test_transport_failure_reason_captured(catalogue: list[Signature], recording: str,
                                           transport_reason: str,
                                           tls_signature: str | None) -> None:
    matches = _scan_file(REPLIES / "curl" / f"{recording}.txt", catalogue)
    reset = [match for match in matches
             if match.signature_id == "envoy-upstream-reset-before-headers"]

    assert reset[0].groups["reason"] == "remote connection failure"
    assert transport_reason in reset[0].groups["transport_failure_reason"]
    if tls_signature is not None:
        assert tls_signature in _ids(matches)


def _access_log_matches(catalogue: list[Signature], path_fragment: str) -> set[str]:
    path = REPLIES / "access-istio-text.log"
    lines = [line for line in path.read_text().splitlines() if path_fragment in line]
    assert len(lines) >= 1
    document = Document(str(path), "\n".join(lines))
    return _ids(scan(document, catalogue).facts)


@pytest.mark.parametrize(("upstream", "expected"), [
    ("/upstream/tls-expired/", {"tls-certificate-verify-failed", "tls-peer-certificate-expired",
                                "tls-openssl-internal-error"}),
    ("/upstream/tls-other-name/", {"tls-certificate-verify-failed", "tls-san-mismatch"}),
    ("/upstream/tls-to-plaintext/", {"tls-wrong-version-number"}),
    ("/upstream/tls12-unknown-ca-client/", {"tls-alert-unknown-ca"}),
    ("/upstream/tls12-expired-client-cert/", {"tls-alert-certificate-expired"}),
    ("/upstream/overflow/", {"envoy-upstream-reset-overflow"}),
    ("/upstream/no-endpoints/", {"envoy-no-healthy-upstream"}),
])
def test_access_log_details_underscore_form(catalogue: list[Signature], upstream: str,
                                            expected: set[str]) -> None:
    assert expected <= _access_log_matches(catalogue, upstream)


def test_tls13_client_cert_failure_only_in_envoy_log(catalogue: list[Signature]) -> None:
    access_log = _access_log_matches(catalogue, "/upstream/tls13-no-client-cert/")
    envoy_log = _ids(_scan_file(REPLIES / "envoy.log", catalogue))

    assert "tls-alert-certificate-required" not in access_log
    assert "tls-alert-certificate-required" in envoy_log


def test_envoy_log_space_form(catalogue: list[Signature]) -> None:
    matches = _scan_file(REPLIES / "envoy.log", catalogue)
    verify = [match for match in matches if match.signature_id == "tls-certificate-verify-failed"]

    assert {"envoy-jwt-expired", "envoy-jwks-kid-not-found", "tls-san-mismatch",
            "tls-alert-unknown-ca", "tls-alert-certificate-expired"} <= _ids(matches)
    assert any("certificate has expired" in match.groups.get("detail", "") for match in verify)


def test_rbac_policy_name_captured(catalogue: list[Signature]) -> None:
    path = REPLIES / "access-istio-text.log"
    matches = _scan_file(path, catalogue)
    policies = {match.groups["policy"] for match in matches
                if match.signature_id == "envoy-rbac-denied-matched-policy"}

    assert policies == {"none", "ns[shop]-policy[deny-admin]-rule[0]"}


def test_envoy_log_timestamp_in_utc(catalogue: list[Signature]) -> None:
    matches = _scan_file(REPLIES / "envoy.log", catalogue)

    assert all(match.timestamp is not None for match in matches)
    assert all(match.timestamp.tzinfo == timezone.utc for match in matches)


def test_agent_log_timestamp() -> None:
    line = (CASES / "17-tls-istio-selfsigned-root-ca-expired" / "proxy.log").read_text()

    assert leading_timestamp(line) == datetime(2019, 6, 2, 16, 52, 29, 309612, timezone.utc)


def test_line_without_timestamp() -> None:
    assert leading_timestamp("upstream connect error or disconnect/reset before headers.") is None


def test_root_ca_case_signatures(catalogue: list[Signature]) -> None:
    case = CASES / "17-tls-istio-selfsigned-root-ca-expired"
    proxy = _scan_file(case / "proxy.log", catalogue)
    client = _scan_file(case / "client.txt", catalogue)

    assert _ids(proxy) == {"istio-config-not-received"}
    assert proxy[0].line == 1
    assert client[0].groups["reason"] == "connection failure"


def test_xds_no_healthy_upstream_not_a_503(catalogue: list[Signature]) -> None:
    path = CORPUS / "agent-istiod-logs" / "01-istio-1.6.3-ingressgateway-agent-sds-startup.log"
    matches = _scan_file(path, catalogue)

    assert "envoy-no-healthy-upstream" not in _ids(matches)
    assert "istio-xds-stream-closed" in _ids(matches)


def test_oom_killed_in_pod_json(catalogue: list[Signature]) -> None:
    matches = _scan_file(CASES / "20-oom-sidecar-memory-limit-many-tcp-services" / "pod.json",
                         catalogue)

    assert "k8s-oom-killed" in _ids(matches)


def test_matched_text_is_redacted() -> None:
    parse_jwt = Signature("test-parse-jwt", r"Parse Jwt (?P<token>eyJ\S+)", None, (),
                          "Envoy's debug line with the raw token.", "test", 1)
    path = REPLIES / "envoy.log"

    matches = scan(Document(str(path), path.read_text()), [parse_jwt]).facts

    assert matches
    for match in matches:
        assert match.text.endswith(SIGNATURE_MASK)
        assert match.groups["token"].endswith(SIGNATURE_MASK)


def test_empty_catalogue_matches_nothing() -> None:
    document = Document("reply", "Jwt is expired\n")

    assert scan(document, []).facts == []


# --- loader -------------------------------------------------------------------


def _write_catalogue(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "signatures.yaml"
    path.write_text(text)
    return path


GOOD_ENTRY = """\
  - id: envoy-jwt-expired
    pattern: 'Jwt is expired'
    symptom: http-401
    causes: [jwt-expired]
    description: Expired token.
"""


def test_loader_reports_bad_regex(tmp_path: Path) -> None:
    path = _write_catalogue(tmp_path, "signatures:\n" + GOOD_ENTRY + """\
  - id: broken-regex
    pattern: 'reset reason: (?P<reason>[^,+'
    symptom: http-503
    causes: []
    description: Unbalanced bracket.
""")

    entries, problems = load_catalogue(path)

    assert [entry.id for entry in entries] == ["envoy-jwt-expired"]
    assert len(problems) == 1
    assert problems[0].source == str(path)
    assert problems[0].line == 8
    assert "'broken-regex'" in problems[0].message
    assert "invalid regular expression" in problems[0].message


def test_loader_reports_missing_key(tmp_path: Path) -> None:
    path = _write_catalogue(tmp_path, "signatures:\n" + GOOD_ENTRY + """\
  - id: no-symptom
    pattern: 'x'
    causes: []
    description: Forgot the symptom.
""")

    entries, problems = load_catalogue(path)

    assert len(entries) == 1
    assert len(problems) == 1
    assert problems[0].line == 7
    assert "'no-symptom'" in problems[0].message
    assert "missing required key 'symptom'" in problems[0].message


def test_loader_reports_unknown_key(tmp_path: Path) -> None:
    path = _write_catalogue(tmp_path, "signatures:\n" + GOOD_ENTRY.replace(
        "    description:", "    severity: high\n    description:"))

    entries, problems = load_catalogue(path)

    assert entries == []
    assert problems[0].line == 6
    assert "unknown key 'severity'" in problems[0].message


def test_loader_reports_duplicate_id(tmp_path: Path) -> None:
    path = _write_catalogue(tmp_path, "signatures:\n" + GOOD_ENTRY + GOOD_ENTRY)

    entries, problems = load_catalogue(path)

    assert len(entries) == 1
    assert problems[0].line == 7
    assert "duplicate id" in problems[0].message
    assert "line 2" in problems[0].message


def test_loader_reports_wrong_types(tmp_path: Path) -> None:
    path = _write_catalogue(tmp_path, """\
signatures:
  - id: Bad_Id
    pattern: ''
    symptom: [http-401]
    causes: jwt-expired
    description: ''
""")

    entries, problems = load_catalogue(path)
    messages = " ".join(problem.message for problem in problems)

    assert entries == []
    assert len(problems) == 5
    assert "id must be lower-case" in messages
    assert "pattern must be a non-empty" in messages
    assert "symptom must be" in messages
    assert "causes must be a list" in messages
    assert "description must be" in messages


def test_loader_reports_yaml_syntax(tmp_path: Path) -> None:
    path = _write_catalogue(tmp_path, "signatures:\n  - id: [unclosed\n")

    entries, problems = load_catalogue(path)

    assert entries == []
    assert problems[0].source == str(path)
    assert problems[0].line is not None


def test_loader_reports_missing_list(tmp_path: Path) -> None:
    path = _write_catalogue(tmp_path, "signature:\n" + GOOD_ENTRY)

    entries, problems = load_catalogue(path)

    assert entries == []
    assert "expected a top-level 'signatures:' list" in problems[0].message


def test_loader_reports_missing_file(tmp_path: Path) -> None:
    entries, problems = load_catalogue(tmp_path / "absent.yaml")

    assert entries == []
    assert "cannot read" in problems[0].message
