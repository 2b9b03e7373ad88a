"""TLS facts from real openssl s_client and x509 outputs, PEM files and case 17."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from doctor.model import Document
from doctor.parsers import tls
from doctor.parsers.tls import CertificateInfo, TlsHandshake

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "data" / "recorded" / "tls"
CASES = ROOT / "tests" / "data" / "cases"
REDACT = ROOT / "tests" / "data" / "recorded" / "redact"
MESH_ROOT = "O=cluster.local, CN=Mesh Root CA"


def _parse(path: Path) -> list:
    document = Document(str(path), path.read_text())
    assert tls.sniff(document)
    result = tls.parse(document)
    assert result.kind == tls.KIND
    assert result.problems == []
    return result.facts


def _handshake(name: str) -> TlsHandshake:
    facts = [fact for fact in _parse(RECORDED / f"s_client-{name}.txt")
             if isinstance(fact, TlsHandshake)]
    assert len(facts) == 1
    return facts[0]


def test_verified_handshake() -> None:
    handshake = _handshake("verified")

    assert handshake.verify_code == 0
    assert handshake.verify_error is None
    assert handshake.alerts == ()
    assert handshake.protocol == "TLSv1.3"
    assert handshake.cipher == "TLS_AES_256_GCM_SHA384"
    assert handshake.target.startswith("127.0.0.1:")
    assert handshake.no_peer_certificate is False


def test_showcerts_chain_decoded_with_spiffe_san() -> None:
    leaf = _handshake("verified").peer_certificates[0]

    assert leaf.subject == "CN=orders.shop.svc"
    assert leaf.issuer == MESH_ROOT
    assert leaf.spiffe_ids == ("spiffe://cluster.local/ns/shop/sa/orders",)
    assert leaf.dns_sans == ("orders.shop.svc.cluster.local", "localhost")
    assert leaf.fingerprint_sha256 is not None
    assert leaf.line == 9


def test_expired_server_certificate() -> None:
    handshake = _handshake("expired-server")
    failure = handshake.verify_failures[0]
    leaf = handshake.peer_certificates[0]

    assert handshake.verify_code == 10
    assert handshake.verify_error == "certificate has expired"
    assert handshake.alerts == ("certificate verify failed",)
    assert handshake.no_peer_certificate is True
    assert failure.depth == 0
    assert failure.subject == "CN=orders.shop.svc"
    assert failure.code == 10
    assert leaf.not_after < leaf.not_before + timedelta(days=31)
    assert leaf.not_after.tzinfo == timezone.utc


def test_expired_server_without_verify_error() -> None:
    handshake = _handshake("expired-server-no-verify-error")

    assert handshake.verify_code == 10
    assert handshake.alerts == ()
    assert handshake.no_peer_certificate is False


def test_expired_root_fails_at_depth_one() -> None:
    failure = _handshake("expired-root").verify_failures[0]

    assert failure.depth == 1
    assert failure.subject == "O=cluster.local, CN=Expired Mesh Root CA"
    assert failure.message == "certificate has expired"


def test_unknown_ca() -> None:
    handshake = _handshake("unknown-ca")

    assert handshake.verify_code == 20
    assert handshake.verify_error == "unable to get local issuer certificate"


def test_san_mismatch() -> None:
    handshake = _handshake("san-mismatch")

    assert handshake.verify_code == 62
    assert handshake.verify_error == "hostname mismatch"
    assert handshake.peer_certificates[0].subject == "CN=payments.shop.svc"


def test_plaintext_server_wrong_version() -> None:
    handshake = _handshake("plaintext-server")

    assert handshake.alerts == ("wrong version number",)
    assert handshake.protocol is None
    assert handshake.cipher is None
    assert handshake.no_peer_certificate is True
    assert handshake.line == 2
    assert "wrong version number" in handshake.text


@pytest.mark.parametrize(("name", "alert", "number", "protocol"), [
    ("tls12-client-cert-unknown-ca", "tlsv1 alert unknown ca", 48, "TLSv1.2"),
    ("tls13-client-cert-unknown-ca", "tlsv1 alert unknown ca", 48, "TLSv1.3"),
    ("tls12-client-cert-expired", "sslv3 alert certificate expired", 45, "TLSv1.2"),
    ("tls13-no-client-cert", "tlsv13 alert certificate required", 116, "TLSv1.3"),
    ("envoy-tls12-client-cert-other-ca", "tlsv1 alert unknown ca", 48, "TLSv1.2"),
    ("envoy-tls13-client-cert-other-ca", "tlsv1 alert unknown ca", 48, "TLSv1.3"),
])
def test_server_rejects_client_certificate(name: str, alert: str, number: int,
                                           protocol: str) -> None:
    handshake = _handshake(name)

    assert handshake.alerts == (alert,)
    assert handshake.alert_numbers == (number,)
    assert handshake.protocol == protocol
    assert alert in handshake.text


def test_tls13_rejection_after_handshake() -> None:
    tls12 = _handshake("envoy-tls12-client-cert-other-ca")
    tls13 = _handshake("envoy-tls13-client-cert-other-ca")

    assert tls12.verify_code is None
    assert tls13.verify_code == 0
    assert tls12.line < 10
    assert tls13.line > 40


def test_envoy_mtls_success() -> None:
    handshake = _handshake("envoy-tls13-mtls-ok")

    assert handshake.alerts == ()
    assert handshake.verify_code == 0


def test_handshake_text_has_no_session_secret() -> None:
    path = RECORDED / "s_client-envoy-tls13-mtls-ok.txt"
    secret = next(line.split(":", 1)[1].strip() for line in path.read_text().splitlines()
                  if line.strip().startswith("Resumption PSK:"))

    assert secret not in repr(_parse(path))


def test_x509_text_of_client() -> None:
    (certificate,) = _parse(RECORDED / "x509-text-client.txt")

    assert certificate.origin == "x509-text"
    assert certificate.subject == "CN=frontend.shop.svc"
    assert certificate.issuer == MESH_ROOT
    assert certificate.uri_sans == ("spiffe://cluster.local/ns/shop/sa/frontend",)
    assert certificate.is_ca is False
    assert certificate.label == "client.crt"
    assert certificate.text.startswith("Not After :")


def test_x509_text_matches_pem() -> None:
    (from_text,) = _parse(RECORDED / "x509-text-root-ca.txt")
    (from_pem,) = _parse(RECORDED / "root-ca.crt")

    assert from_text.subject == from_pem.subject
    assert from_text.issuer == from_pem.issuer
    assert from_text.serial == from_pem.serial
    assert from_text.not_after == from_pem.not_after
    assert from_text.is_ca is True
    assert from_pem.is_ca is True
    assert from_pem.self_issued


def test_pem_bundle_with_three_roots() -> None:
    certificates = _parse(RECORDED / "trust-bundle.pem")

    assert [cert.subject for cert in certificates] == [
        MESH_ROOT, "O=other.example, CN=Other Root CA",
        "O=cluster.local, CN=Expired Mesh Root CA"]
    assert [cert.line for cert in certificates] == [1, 12, 23]
    assert all(cert.is_ca for cert in certificates)


def test_case_17_partial_root_cert() -> None:
    (certificate,) = _parse(CASES / "17-tls-istio-selfsigned-root-ca-expired" / "root-cert.txt")

    assert certificate.subject is None
    assert certificate.issuer == "O=k8s.cluster.local"
    assert certificate.not_after == datetime(2019, 6, 2, 14, 2, 46, tzinfo=timezone.utc)
    assert certificate.not_before == datetime(2018, 6, 2, 14, 2, 46, tzinfo=timezone.utc)
    assert certificate.serial == "c1c6a0f712e114baf05732d6599092ce"
    assert certificate.is_ca is None
    assert "root-cert" in certificate.label
    assert certificate.line == 11
    assert certificate.text == "Not After : Jun  2 14:02:46 2019 GMT"


def test_base64_pem_in_secret() -> None:
    (certificate,) = _parse(REDACT / "kubectl-secret-tls.yaml")

    assert certificate.subject == "CN=shop.example.test"
    assert certificate.label == "tls.crt"
    assert certificate.line == 3


def test_bad_certificate_time_reported() -> None:
    text = ("Certificate:\n    Data:\n        Issuer: O = mesh\n        Validity\n"
            "            Not Before: yesterday\n")

    result = tls.parse(Document("cert.txt", text))

    assert result.problems[0].line == 5
    assert "unreadable certificate time" in result.problems[0].message
    assert result.facts[0].not_before is None


def test_bad_pem_body_reported() -> None:
    text = "-----BEGIN CERTIFICATE-----\nTUlJQm9n\n-----END CERTIFICATE-----\n"

    result = tls.parse(Document("broken.pem", text))

    assert result.facts == []
    assert result.problems[0].line == 1
    assert "not a readable X.509 certificate" in result.problems[0].message


def test_command_without_output_reported() -> None:
    text = "$ openssl s_client -connect 127.0.0.1:1\nCONNECTED(00000003)\n$ openssl s_client -connect 127.0.0.1:2\n"

    result = tls.parse(Document("two.txt", text))

    assert len([fact for fact in result.facts if isinstance(fact, TlsHandshake)]) == 1
    assert result.problems[0].line == 3


def test_access_log_not_sniffed() -> None:
    path = ROOT / "tests" / "data" / "recorded" / "envoy-local-replies" / "access-istio-text.log"

    assert not tls.sniff(Document(str(path), path.read_text()))


def test_certificate_fact_fields() -> None:
    (certificate,) = _parse(RECORDED / "server.crt")

    assert isinstance(certificate, CertificateInfo)
    assert certificate.ip_sans == ("127.0.0.1",)
    assert certificate.source.endswith("server.crt")
    assert len(certificate.fingerprint_sha256) == 64
