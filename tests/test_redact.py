"""Redaction of seeded secrets in real kubectl, curl and openssl outputs."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jwt
import pytest
import yaml

from doctor.redact import (
    MASK,
    PRIVATE_KEY_MASK,
    SIGNATURE_MASK,
    count_redactions,
    mask_jwt,
    redact_text,
)

RECORDED = Path(__file__).parent / "data" / "recorded" / "redact"

SEEDED_PASSWORD = "S33ded-Passw0rd-d0-not-leak"
SEEDED_API_TOKEN = "tok_live_5eeded0paque7oken"
SEEDED_SESSION = "sess-5eeded-c00kie-value"
SEEDED_PROXY_BASIC = "cHJveHl1c2VyOnByb3h5LXNlZWRlZC1wYXNz"


def _recorded(name: str) -> str:
    return (RECORDED / name).read_text()


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


@pytest.fixture(scope="module")
def token() -> str:
    return _recorded("seeded-jwt.txt").strip()


def _signature(token: str) -> str:
    return token.rsplit(".", 1)[1]


def test_mask_jwt_keeps_header_and_claims(token: str) -> None:
    masked = mask_jwt(token)

    assert masked.endswith("." + SIGNATURE_MASK)
    assert _signature(token) not in masked
    assert jwt.get_unverified_header(token) == json.loads(
        base64.urlsafe_b64decode(masked.split(".")[0] + "=="))
    claims = _claims(masked)
    assert claims["iss"] == "https://issuer.example.test"
    assert claims["sub"] == "user-42"
    assert claims["aud"] == "shop"
    assert claims["exp"] == 1796419119


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_mask_jwt_masks_email_claim(token: str) -> None:
    masked = mask_jwt(token)

    assert _claims(masked)["email"] == MASK
    assert "jane@example.test" not in base64.urlsafe_b64decode(
        masked.split(".")[1] + "==").decode()


def test_redact_text_masks_personal_claims_in_text(token: str) -> None:
    line = f"jwt_authn: token {token} rejected"

    redacted = redact_text(line)

    masked_token = redacted.split()[2]
    assert _claims(masked_token)["email"] == MASK
    assert _signature(token) not in redacted
    assert redact_text(redacted) == redacted


def test_already_masked_token_loses_personal_claims() -> None:
    signed = jwt.encode({"iss": "https://issuer", "sub": "lab-user@mesh-lab.test",
                         "name": "Lab User", "exp": 1796419876}, "k" * 32, algorithm="HS256")
    bundled = signed.rsplit(".", 1)[0] + "." + SIGNATURE_MASK

    redacted = redact_text(f"Authorization: Bearer {bundled}")

    claims = _claims(redacted.split("Bearer ", 1)[1])
    assert claims == {"iss": "https://issuer", "sub": MASK, "name": MASK, "exp": 1796419876}


def test_payload_without_personal_claims_unchanged() -> None:
    signed = jwt.encode({"iss": "https://issuer", "sub": "svc-7"}, "k" * 32, algorithm="HS256")

    assert mask_jwt(signed).split(".")[1] == signed.split(".")[1]


def test_mask_jwt_is_idempotent(token: str) -> None:
    assert mask_jwt(mask_jwt(token)) == mask_jwt(token)


def test_mask_jwt_unsigned_token_unchanged() -> None:
    unsigned = jwt.encode({"sub": "x"}, key=None, algorithm="none")

    assert mask_jwt(unsigned) == unsigned


def test_mask_jwt_masks_non_jwt_whole() -> None:
    assert mask_jwt("opaque-token-value") == MASK


def test_curl_verbose_masks_every_credential(token: str) -> None:
    original = _recorded("curl-verbose.txt")

    redacted = redact_text(original)

    assert _signature(token) not in redacted
    assert SEEDED_SESSION not in redacted
    assert SEEDED_PROXY_BASIC not in redacted
    assert f"> Authorization: Bearer {mask_jwt(token)}" in redacted
    assert f"'Authorization: Bearer {mask_jwt(token)}'" in redacted
    assert f"> Cookie: session={MASK}; theme={MASK}" in redacted
    assert f"> Proxy-Authorization: Basic {MASK}" in redacted
    assert f"< Set-Cookie: session={MASK}; Path=/; HttpOnly" in redacted
    assert redacted.count("\n") == original.count("\n")


def test_curl_verbose_keeps_other_lines() -> None:
    original = _recorded("curl-verbose.txt")

    redacted = redact_text(original)

    assert "> GET /orders HTTP/1.1" in redacted
    assert "< HTTP/1.0 200 OK" in redacted


def test_pem_private_key_masked_whole() -> None:
    original = _recorded("openssl-genpkey-rsa.pem")
    body_line = original.splitlines()[1]

    redacted = redact_text(original)

    assert body_line not in redacted
    assert redacted.startswith("-----BEGIN PRIVATE KEY-----\n" + PRIVATE_KEY_MASK)
    assert redacted.rstrip().endswith("-----END PRIVATE KEY-----")
    assert redacted.count("\n") == original.count("\n")


def test_pem_private_key_in_json_string() -> None:
    pem = _recorded("openssl-genpkey-rsa.pem")
    document = json.dumps({"private_key": {"inline_string": pem}})

    redacted = redact_text(document)

    assert pem.splitlines()[1] not in redacted
    assert json.loads(redacted)["private_key"]["inline_string"].startswith(
        "-----BEGIN PRIVATE KEY-----\n" + PRIVATE_KEY_MASK)


def test_truncated_pem_private_key_masked_to_end() -> None:
    pem_lines = _recorded("openssl-genpkey-rsa.pem").splitlines()
    truncated = "\n".join(pem_lines[:5])

    redacted = redact_text(truncated)

    for body_line in pem_lines[1:5]:
        assert body_line not in redacted


def test_secret_yaml_data_and_annotation_masked() -> None:
    original = _recorded("kubectl-secret-generic.yaml")

    redacted = redact_text(original)
    secret = yaml.safe_load(redacted)
    last_applied = json.loads(
        secret["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])

    assert _b64(SEEDED_PASSWORD) not in redacted
    assert _b64(SEEDED_API_TOKEN) not in redacted
    assert secret["data"] == {"api-token": MASK, "password": MASK}
    assert last_applied["data"] == {"api-token": MASK, "password": MASK}
    assert secret["metadata"]["name"] == "app-credentials"
    assert redacted.count("\n") == original.count("\n")


def test_secret_json_data_and_annotation_masked() -> None:
    original = _recorded("kubectl-secret-generic.json")

    redacted = redact_text(original)
    secret = json.loads(redacted)
    last_applied = json.loads(
        secret["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])

    assert _b64(SEEDED_PASSWORD) not in redacted
    assert _b64(SEEDED_API_TOKEN) not in redacted
    assert secret["data"] == {"api-token": MASK, "password": MASK}
    assert last_applied["data"] == {"api-token": MASK, "password": MASK}
    assert redacted.count("\n") == original.count("\n")


def test_tls_secret_key_and_cert_masked() -> None:
    original = _recorded("kubectl-secret-tls.yaml")

    redacted = redact_text(original)
    secret = yaml.safe_load(redacted)

    assert "LS0tLS1CRUdJTi" not in redacted
    assert secret["data"] == {"tls.crt": MASK, "tls.key": MASK}
    assert secret["type"] == "kubernetes.io/tls"


def test_secret_in_yaml_list_masked() -> None:
    generic = _recorded("kubectl-secret-generic.yaml")
    items = "\n".join("  " + line if line else line for line in generic.splitlines())
    listing = "apiVersion: v1\nitems:\n" + "- " + items.lstrip() + "\nkind: List\n"

    redacted = redact_text(listing)
    document = yaml.safe_load(redacted)

    assert _b64(SEEDED_PASSWORD) not in redacted
    assert document["items"][0]["data"] == {"api-token": MASK, "password": MASK}


def test_secret_string_data_masked() -> None:
    manifest = (
        "apiVersion: v1\n"
        "kind: Secret\n"
        "metadata:\n"
        "  name: db\n"
        "stringData:\n"
        f"  password: {SEEDED_PASSWORD}\n"
        "  config.ini: |\n"
        f"    password={SEEDED_PASSWORD}\n"
        "    user=shop\n"
        "type: Opaque\n"
    )

    redacted = redact_text(manifest)
    secret = yaml.safe_load(redacted)

    assert SEEDED_PASSWORD not in redacted
    assert secret["stringData"]["password"] == MASK
    assert secret["type"] == "Opaque"
    assert redacted.count("\n") == manifest.count("\n")


def test_configmap_data_not_masked() -> None:
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  mode: strict\n"
    secret_after = "---\napiVersion: v1\nkind: Secret\ndata:\n  key: c2VjcmV0\n"

    redacted = redact_text(manifest + secret_after)

    assert "  mode: strict" in redacted
    assert "c2VjcmV0" not in redacted


def test_jwt_in_json_log_line_masked(token: str) -> None:
    line = json.dumps({"path": "/orders", "authorization": f"Bearer {token}", "code": 401})

    redacted = redact_text(line)

    assert _signature(token) not in redacted
    assert json.loads(redacted)["authorization"] == f"Bearer {mask_jwt(token)}"


def test_envoy_debug_header_dump_masked(token: str) -> None:
    dump = f"':path', '/orders'\n'authorization', 'Bearer {token}'\n'cookie', 'session={SEEDED_SESSION}'\n"

    redacted = redact_text(dump)

    assert _signature(token) not in redacted
    assert SEEDED_SESSION not in redacted
    assert "':path', '/orders'" in redacted


def test_bare_jwt_in_query_masked(token: str) -> None:
    url = f"GET /callback?access_token={token}&state=xyz HTTP/1.1"

    redacted = redact_text(url)

    assert _signature(token) not in redacted
    assert "state=xyz" in redacted


def test_opaque_query_token_masked() -> None:
    url = f"https://api.example.test/v1?refresh_token={SEEDED_API_TOKEN}&page=2"

    redacted = redact_text(url)

    assert SEEDED_API_TOKEN not in redacted
    assert "page=2" in redacted


@pytest.mark.parametrize("command", [
    f"kubectl --token={SEEDED_API_TOKEN} get pods -A",
    f"kubectl --token {SEEDED_API_TOKEN} get pods -A",
    f"istioctl x precheck --password '{SEEDED_PASSWORD}'",
])
def test_secret_command_option_masked(command: str) -> None:
    redacted = redact_text(command)

    assert SEEDED_API_TOKEN not in redacted
    assert SEEDED_PASSWORD not in redacted
    assert MASK in redacted


def test_url_password_masked() -> None:
    url = f"jwksUri: https://reader:{SEEDED_PASSWORD}@keys.example.test/jwks.json"

    redacted = redact_text(url)

    assert SEEDED_PASSWORD not in redacted
    assert "https://reader:<masked>@keys.example.test/jwks.json" in redacted


def test_tls_session_secrets_masked() -> None:
    transcript = (Path(__file__).parent / "data" / "recorded" / "tls"
                  / "s_client-envoy-tls13-mtls-ok.txt").read_text()
    secrets = [line.split(":", 1)[1].strip() for line in transcript.splitlines()
               if line.strip().startswith(("Master-Key:", "Resumption PSK:"))]

    redacted = redact_text(transcript)

    assert secrets
    for secret in secrets:
        assert secret not in redacted
    assert f"    Resumption PSK: {MASK}" in redacted
    assert "PSK identity: None" in redacted


def test_prose_about_authorization_kept() -> None:
    text = "RBAC: access denied\nAuthorizationPolicy ns[default]-policy[deny-all] matched\n"

    assert redact_text(text) == text


def test_shell_variable_credential_kept() -> None:
    command = "curl -H \"Authorization: Bearer $TOKEN\" http://orders:8080/"

    assert redact_text(command) == command


@pytest.mark.parametrize("name", sorted(path.name for path in RECORDED.iterdir()))
def test_redaction_idempotent(name: str) -> None:
    once = redact_text(_recorded(name))

    assert redact_text(once) == once


def test_count_redactions_by_kind(token: str) -> None:
    text = "\n".join([f"Authorization: Bearer {token}", f"token={token}",
                      "-----BEGIN PRIVATE KEY-----", "MIIEvQIBADANBg", "-----END PRIVATE KEY-----",
                      "nothing secret here"])

    counts = count_redactions(text)

    assert counts["Authorization or Cookie header"] == 1
    assert counts["JWT signature or personal claim"] == 1
    assert counts["private key"] == 1
    assert count_redactions(redact_text(text)) == {}
