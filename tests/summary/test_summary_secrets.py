"""Secrets seeded in every kind of input reach no output of the incident summary.

The inputs are a copy of the 401 example with secrets written into the
curl transcript (a signed JWT with an email claim, a cookie), the access
log (a token query parameter) and the Istio YAML (a Secret with a private
key). The session journal adds a note with a bearer token and a command
with --token.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import jwt
import pytest

from doctor.journal import COMMAND, NOTE, SESSION_STARTED, Journal
from doctor.summary import summary_from_journal, summary_from_scan
from doctor.summary_render import FORMATS, render
from summary_helpers import FIXED_NOW, validate

EMAIL = "seeded.person@example.test"
QUERY_TOKEN = "tok-seeded-query-5ecret"
COOKIE = "sess-seeded-c00kie"
KUBE_TOKEN = "seeded-kube-api-token-77"
PRIVATE_KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCseeded"
SECRET_VALUE = base64.b64encode(b"seeded-database-password").decode()
SIGNING_KEY = "seeded-hmac-signing-key-of-32-bytes!"


@pytest.fixture(scope="module")
def token() -> str:
    claims = {"iss": "https://issuer.mesh-lab.test", "sub": "user-7", "email": EMAIL,
              "aud": "httpbin", "exp": 1796419871}
    return jwt.encode(claims, SIGNING_KEY, algorithm="HS256")


@pytest.fixture
def seeded_bundle(tmp_path, token) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(Path("examples/401-jwt-expired"), bundle)

    for transcript in sorted((bundle / "observations").glob("*client.curl*")):
        lines = transcript.read_text(encoding="utf-8").splitlines()
        lines = [f"> Authorization: Bearer {token}" if line.startswith("> Authorization:")
                 else line for line in lines]
        lines.insert(3, f"> Cookie: session={COOKIE}")
        transcript.write_text("\n".join(lines) + "\n", encoding="utf-8")

    log = bundle / "logs" / "sleep-7b9f8c6d5-k2x8p.istio-proxy.log"
    text = log.read_text(encoding="utf-8")
    log.write_text(text.replace("GET /get HTTP/1.1\" 401",
                                f"GET /get?access_token={QUERY_TOKEN} HTTP/1.1\" 401"),
                   encoding="utf-8")

    with open(bundle / "istio" / "policies.yaml", "a", encoding="utf-8") as handle:
        handle.write(f"""---
apiVersion: v1
kind: Secret
metadata:
  name: httpbin-credentials
  namespace: default
type: Opaque
data:
  password: {SECRET_VALUE}
stringData:
  tls.key: |
    -----BEGIN PRIVATE KEY-----
    {PRIVATE_KEY_BODY}
    -----END PRIVATE KEY-----
""")
    return bundle


def _assert_no_seed(rendered: str, token: str) -> None:
    signature = token.rsplit(".", 1)[1]
    for seed in (signature, EMAIL, QUERY_TOKEN, COOKIE, KUBE_TOKEN, PRIVATE_KEY_BODY, SECRET_VALUE,
                 SIGNING_KEY):
        assert seed not in rendered
    assert base64.urlsafe_b64encode(EMAIL.encode()).decode()[:16] not in rendered


def test_scan_outputs_carry_no_seed(seeded_bundle, token):
    data = summary_from_scan([seeded_bundle], now=FIXED_NOW).to_dict()

    for output_format in FORMATS:
        _assert_no_seed(render(data, output_format), token)
    markdown = render(data, "md")
    assert "access_token=<masked>" in markdown
    assert data["redactions"]["Authorization or Cookie header"] >= 1


def test_session_outputs_carry_no_seed(seeded_bundle, token, tmp_path):
    journal = Journal.for_session("seeded", root=tmp_path / "sessions")
    journal.append(SESSION_STARTED, {"paths": [str(seeded_bundle)], "context": "lab"})
    journal.append(NOTE, {"text": f"Client sent Authorization: Bearer {token}"}, actor="oncall")
    journal.append(COMMAND, {"role": "check", "argv": ["kubectl", "--token", KUBE_TOKEN, "get",
                                                        "pods"], "exit_status": 0}, actor="oncall")

    data = summary_from_journal(journal.path, now=FIXED_NOW).to_dict()

    validate(json.loads(render(data, "json")))
    for output_format in FORMATS:
        _assert_no_seed(render(data, output_format), token)
    texts = " ".join(item["text"] for item in data["timeline"])
    assert "--token <masked>" in texts
