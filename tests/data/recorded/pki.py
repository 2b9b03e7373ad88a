"""Make a throwaway PKI for the TLS and Envoy recording scripts.

It writes a mesh root CA, an unrelated CA, an expired root CA, and leaf
certificates signed by them: a valid server, an expired server, a server
whose SANs name another host, a client with a SPIFFE URI SAN, a client
signed by the unrelated CA and a server whose chain ends in the expired root.
Keys are ECDSA P-256 made with the cryptography library and never reused.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)
TRUST_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = []
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _write(directory: Path, stem: str, cert: x509.Certificate,
           key: ec.EllipticCurvePrivateKey) -> Issued:
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Issued(cert_path, key_path)


def _ca(subject: x509.Name, not_before: datetime.datetime,
        not_after: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(subject: x509.Name, issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
          not_before: datetime.datetime, not_after: datetime.datetime,
          dns: list[str], uris: list[str], ips: list[str]) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
    names += [x509.UniformResourceIdentifier(uri) for uri in uris]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def make_pki(directory: Path, now: datetime.datetime | None = None) -> dict[str, Issued]:
    """Write every certificate and key into `directory` and return them by role."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    directory.mkdir(parents=True, exist_ok=True)
    issued: dict[str, Issued] = {}

    root, root_key = _ca(_name("Mesh Root CA", TRUST_DOMAIN), now - DAY, now + 3650 * DAY)
    issued["root-ca"] = _write(directory, "root-ca", root, root_key)
    other, other_key = _ca(_name("Other Root CA", "other.example"), now - DAY, now + 3650 * DAY)
    issued["other-ca"] = _write(directory, "other-ca", other, other_key)
    expired_root, expired_root_key = _ca(_name("Expired Mesh Root CA", TRUST_DOMAIN),
                                         now - 366 * DAY, now - DAY)
    issued["expired-root-ca"] = _write(directory, "expired-root-ca", expired_root, expired_root_key)

    orders_dns = ["orders.shop.svc.cluster.local", "localhost"]
    orders_spiffe = [f"spiffe://{TRUST_DOMAIN}/ns/shop/sa/orders"]
    leaves = {
        "server": (_name("orders.shop.svc"), root, root_key, now - DAY, now + 90 * DAY,
                   orders_dns, orders_spiffe, ["127.0.0.1"]),
        "server-expired": (_name("orders.shop.svc"), root, root_key, now - 31 * DAY, now - DAY,
                           orders_dns, orders_spiffe, ["127.0.0.1"]),
        "server-other-name": (_name("payments.shop.svc"), root, root_key, now - DAY, now + 90 * DAY,
                              ["payments.shop.svc.cluster.local"],
                              [f"spiffe://{TRUST_DOMAIN}/ns/shop/sa/payments"], []),
        "server-under-expired-root": (_name("orders.shop.svc"), expired_root, expired_root_key,
                                      now - 30 * DAY, now + 60 * DAY, orders_dns, orders_spiffe,
                                      ["127.0.0.1"]),
        "client": (_name("frontend.shop.svc"), root, root_key, now - DAY, now + 90 * DAY,
                   [], [f"spiffe://{TRUST_DOMAIN}/ns/shop/sa/frontend"], []),
        "client-other-ca": (_name("frontend.shop.svc"), other, other_key, now - DAY, now + 90 * DAY,
                            [], ["spiffe://other.example/ns/shop/sa/frontend"], []),
        "client-expired": (_name("frontend.shop.svc"), root, root_key, now - 31 * DAY, now - DAY,
                           [], [f"spiffe://{TRUST_DOMAIN}/ns/shop/sa/frontend"], []),
    }
    for role, (subject, issuer, issuer_key, start, end, dns, uris, ips) in leaves.items():
        cert, key = _leaf(subject, issuer, issuer_key, start, end, dns, uris, ips)
        issued[role] = _write(directory, role, cert, key)
    return issued
