"""JWT, JWKS and jwt_authn provider facts from real Envoy recordings and case files."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from doctor.model import Document
from doctor.parsers import jwt
from doctor.parsers.jwt import Jwks, JwtProvider, JwtToken
from doctor.redact import MASK, SIGNATURE_MASK, redact_text

ROOT = Path(__file__).resolve().parents[2]
REPLIES = ROOT / "tests" / "data" / "recorded" / "envoy-local-replies"
REDACT = ROOT / "tests" / "data" / "recorded" / "redact"
CASES = ROOT / "tests" / "data" / "cases"
CORPUS = ROOT / "tests" / "data" / "corpus"


def _document(path: Path) -> Document:
    return Document(str(path), path.read_text())


def _tokens(path: Path) -> list[JwtToken]:
    result = jwt.scan_tokens(_document(path))
    assert result.problems == []
    return [fact for fact in result.facts if isinstance(fact, JwtToken)]


def _raw_token(path: Path) -> str:
    first_line = path.read_text().splitlines()[0]
    return first_line.split("Bearer ", 1)[1].split("'", 1)[0]


def test_expired_token_from_curl_header() -> None:
    path = REPLIES / "curl" / "jwt-expired.txt"

    tokens = _tokens(path)

    assert len(tokens) == 1
    token = tokens[0]
    assert token.line == 1
    assert token.origin == "bearer"
    assert token.alg == "ES256"
    assert token.kid == "key-1"
    assert token.issuer == "https://issuer.example.test"
    assert token.audiences == ("orders",)
    assert token.subject == "user-42"
    assert token.expires_at is not None
    assert token.expires_at.tzinfo == timezone.utc
    assert token.expires_at - token.issued_at == timedelta(hours=1)


def test_response_date_and_code_attached() -> None:
    token = _tokens(REPLIES / "curl" / "jwt-expired.txt")[0]

    assert token.response_code == 401
    assert token.observed_at is not None
    assert token.observed_at - token.expires_at == timedelta(hours=1)


def test_not_yet_valid_token_times() -> None:
    token = _tokens(REPLIES / "curl" / "jwt-not-yet-valid.txt")[0]

    assert token.not_before is not None
    assert token.observed_at is not None
    assert token.not_before - token.observed_at == timedelta(hours=1)


def test_token_text_is_masked() -> None:
    path = REPLIES / "curl" / "jwt-valid.txt"
    raw = _raw_token(path)
    signature = raw.rsplit(".", 1)[1]

    token = _tokens(path)[0]

    assert signature not in token.text
    assert SIGNATURE_MASK in token.text
    assert signature not in repr(token)


def test_personal_claims_masked() -> None:
    token = _tokens(REPLIES / "curl" / "jwt-valid.txt")[0]

    assert token.claims["email"] == MASK
    assert token.claims["sub"] == "user-42"
    assert "jane@example.test" not in repr(token)


def test_curl_verbose_tokens_share_fingerprint() -> None:
    tokens = _tokens(REDACT / "curl-verbose.txt")

    assert [token.line for token in tokens] == [1, 8]
    assert tokens[0].fingerprint == tokens[1].fingerprint
    assert tokens[1].response_code == 200


def test_redacted_token_still_decodes() -> None:
    path = REPLIES / "curl" / "jwt-wrong-audience.txt"
    original = _tokens(path)[0]
    redacted = jwt.scan_tokens(Document(str(path), redact_text(path.read_text()))).facts[0]

    assert redacted.fingerprint == original.fingerprint
    assert redacted.audiences == ("payments",)


def test_token_in_envoy_debug_log() -> None:
    tokens = _tokens(REPLIES / "envoy.log")

    assert tokens
    assert all(token.origin == "text" for token in tokens)
    assert {"key-1", "key-rotated"} <= {token.kid for token in tokens}


def test_malformed_bearer_value_ignored() -> None:
    assert _tokens(REPLIES / "curl" / "jwt-malformed.txt") == []


def test_bad_time_claim_reported() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = pyjwt.encode({"iss": "https://issuer.example.test", "exp": "tomorrow"}, key,
                         algorithm="ES256")
    document = Document("request.txt", f"GET /orders\nAuthorization: Bearer {token}\n")

    result = jwt.scan_tokens(document)

    assert result.facts[0].expires_at is None
    assert result.problems[0].line == 2
    assert "'exp'" in result.problems[0].message


def test_undecodable_token_reported() -> None:
    header = "eyJhbGciOiJFUzI1NiJ9"
    document = Document("request.txt", f"Authorization: Bearer {header}.eyJub3Rqc29u.c2ln\n")

    result = jwt.scan_tokens(document)

    assert result.facts == []
    assert result.problems[0].line == 1
    assert "could not be decoded" in result.problems[0].message


def test_claims_file_of_case_15() -> None:
    path = CASES / "15-401-keycloak-issuer-mismatch-jwks-selfsigned" / "token-claims.json"
    document = _document(path)

    assert jwt.sniff(document)
    result = jwt.parse(document)

    assert result.kind == jwt.KIND
    assert len(result.facts) == 1
    token = result.facts[0]
    assert token.issuer == "https://10.0.0.21:8443/auth/realms/istio"
    assert token.origin == "claims"
    assert token.alg is None
    assert token.line == 1


def test_claims_file_with_header_and_payload() -> None:
    issued = datetime(2024, 3, 1, tzinfo=timezone.utc)
    text = json.dumps({"header": {"alg": "RS256", "kid": "k1"},
                       "payload": {"iss": "https://idp.example.test", "aud": ["a", "b"],
                                   "iat": int(issued.timestamp()),
                                   "email": "someone@example.test"}}, indent=2)
    document = Document("decoded.json", text)

    assert jwt.sniff(document)
    token = jwt.parse(document).facts[0]

    assert token.kid == "k1"
    assert token.audiences == ("a", "b")
    assert token.issued_at == issued
    assert token.claims["email"] == MASK
    assert token.line == 7


def test_jwks_document() -> None:
    document = _document(REPLIES / "jwks.json")

    assert jwt.sniff(document)
    result = jwt.parse(document)

    assert result.kind == jwt.KIND_JWKS
    assert result.facts == [Jwks(str(REPLIES / "jwks.json"), 1, ("key-1",), ("ES256",),
                                 "jwks-document")]


@pytest.mark.parametrize("path", [
    CASES / "20-oom-sidecar-memory-limit-many-tcp-services" / "pod.json",
    CORPUS / "istioctl" / "09-proxy-status-1.22-output-json.json",
])
def test_other_json_not_sniffed(path: Path) -> None:
    assert not jwt.sniff(_document(path))


def test_remote_jwks_cluster_without_tls_case_12() -> None:
    path = CASES / "12-401-remote-jwks-cluster-missing-tls" / "envoy-excerpt.yaml"

    providers = [fact for fact in jwt.scan_tokens(_document(path)).facts
                 if isinstance(fact, JwtProvider)]

    assert len(providers) == 1
    provider = providers[0]
    assert provider.name == "auth0"
    assert provider.issuer == "https://example-tenant.eu.auth0.com/"
    assert provider.jwks_uri == "https://example-tenant.eu.auth0.com/.well-known/jwks.json"
    assert provider.jwks_cluster == "auth0"
    assert provider.jwks_cluster_has_tls is False
    assert provider.jwks_cluster_line == 13


def test_recorded_envoy_config_providers() -> None:
    facts = jwt.scan_tokens(_document(REPLIES / "envoy-config.yaml")).facts
    providers = {fact.name: fact for fact in facts if isinstance(fact, JwtProvider)}
    jwks = [fact for fact in facts if isinstance(fact, Jwks)]

    assert set(providers) == {"local", "remote"}
    assert providers["local"].audiences == ("orders",)
    assert providers["local"].local_jwks_kids == ("key-1",)
    assert providers["remote"].jwks_cluster_has_tls is False
    assert jwks[0].provider == "local"
    assert jwks[0].issuer == "https://issuer.example.test"


def test_istio_config_dump_local_jwks() -> None:
    path = CORPUS / "envoy-admin" / "05-config-dump-jwt-authn-filter-istio-1.24.2.yaml"

    facts = jwt.scan_tokens(_document(path)).facts
    jwks = [fact for fact in facts if isinstance(fact, Jwks)]

    assert len(jwks) == 1
    assert jwks[0].kids == ("DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ",)
    assert jwks[0].issuer == "testing@secure.istio.io"
    assert jwks[0].line == 9


def test_invalid_inline_jwks_reported() -> None:
    text = ("providers:\n  broken:\n    issuer: https://idp.example.test\n"
            "    local_jwks:\n      inline_string: '{\"keys\": ['\n")

    result = jwt.scan_tokens(Document("dump.yaml", text))

    assert result.problems[0].line == 5
    assert "not valid JSON" in result.problems[0].message
    assert isinstance(result.facts[0], JwtProvider)
