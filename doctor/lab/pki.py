"""Key material of the mesh lab, made fresh at run time: a mesh root CA, SPIFFE
workload certificates as istiod would issue them, and a JWT issuer with its JWKS.

Nothing here is written into a bundle except certificates and public keys;
private keys stay in the lab's temporary folder.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

TRUST_DOMAIN = "cluster.local"


def spiffe_id(namespace: str, service_account: str, trust_domain: str = TRUST_DOMAIN) -> str:
    """Return the SPIFFE ID Istio gives a workload: spiffe://TD/ns/NS/sa/SA."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    cert_pem: str
    key_pem: str


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class MeshCA:
    """A self-signed root CA like Istio's `istio-ca-root-cert`, issuing workload certificates."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(timezone.utc)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, TRUST_DOMAIN)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - timedelta(days=1))
            .not_valid_after(self.now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue_workload(self, namespace: str, service_account: str, lifetime: timedelta = timedelta(hours=24),
                       *, not_before: datetime | None = None) -> KeyPair:
        """Issue a workload certificate whose only SAN is the URI of its SPIFFE ID, as istiod does.

        `not_before` defaults to five minutes before the CA's `now`; pass a
        time in the past with a short `lifetime` to issue an expired certificate.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        valid_from = not_before or self.now - timedelta(minutes=5)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid_from)
            .not_valid_after(valid_from + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=True,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False,
                    crl_sign=False, encipher_only=False, decipher_only=False),
                critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                       x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id(namespace, service_account))]),
                critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key))


class JwtIssuer:
    """An RS256 token issuer with one signing key and the JWKS that publishes it."""

    def __init__(self, issuer: str, key_id: str = "lab-signing-key-1") -> None:
        self.issuer = issuer
        self.key_id = key_id
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> str:
        """Return the JWKS JSON document with the public signing key."""
        numbers = self._key.public_key().public_numbers()
        key = {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.key_id,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }
        return json.dumps({"keys": [key]}, separators=(",", ":"))

    def token(self, subject: str, issued_at: datetime, lifetime: timedelta, audience: str | None = None,
              *, not_before: datetime | None = None) -> str:
        """Sign a token for `subject` valid from `issued_at` (or `not_before`) for `lifetime` after `issued_at`."""
        claims: dict[str, object] = {
            "iss": self.issuer,
            "sub": subject,
            "iat": int(issued_at.timestamp()),
            "exp": int((issued_at + lifetime).timestamp()),
        }
        if not_before is not None:
            claims["nbf"] = int(not_before.timestamp())
        if audience is not None:
            claims["aud"] = audience
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id})


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
