"""Record real tool outputs that carry seeded secrets, for the redaction tests.

Run from the repository root: `.venv/bin/python tests/data/recorded/record_redact.py`.
It needs kubectl, curl and openssl on PATH. kubectl runs with `--dry-run=client`
only, so no cluster is contacted; curl talks to a throwaway HTTP server on
127.0.0.1. Every secret is made up here and used nowhere else.
"""

from __future__ import annotations

import datetime
import http.server
import subprocess
import tempfile
import threading
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

OUT = Path(__file__).resolve().parent / "redact"
TIMEOUT_S = 20

SEEDED_PASSWORD = "S33ded-Passw0rd-d0-not-leak"
SEEDED_API_TOKEN = "tok_live_5eeded0paque7oken"
SEEDED_SESSION = "sess-5eeded-c00kie-value"
SEEDED_PROXY_BASIC = "cHJveHl1c2VyOnByb3h5LXNlZWRlZC1wYXNz"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        key_path, cert_path, key = _make_key_and_cert(work)
        token = _make_jwt(key)
        (OUT / "seeded-jwt.txt").write_text(token + "\n")
        (OUT / "openssl-genpkey-rsa.pem").write_text(
            _run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]))
        (OUT / "kubectl-secret-generic.yaml").write_text(_run([
            "kubectl", "create", "secret", "generic", "app-credentials", "-n", "shop",
            f"--from-literal=password={SEEDED_PASSWORD}",
            f"--from-literal=api-token={SEEDED_API_TOKEN}",
            "--save-config", "--dry-run=client", "-o", "yaml"]))
        (OUT / "kubectl-secret-generic.json").write_text(_run([
            "kubectl", "create", "secret", "generic", "app-credentials", "-n", "shop",
            f"--from-literal=password={SEEDED_PASSWORD}",
            f"--from-literal=api-token={SEEDED_API_TOKEN}",
            "--save-config", "--dry-run=client", "-o", "json"]))
        (OUT / "kubectl-secret-tls.yaml").write_text(_run([
            "kubectl", "create", "secret", "tls", "ingress-cert", "-n", "istio-system",
            f"--cert={cert_path}", f"--key={key_path}", "--dry-run=client", "-o", "yaml"]))
        curl_argv = [
            "curl", "-sv", "--max-time", "5",
            "-H", f"Authorization: Bearer {token}",
            "-H", f"Cookie: session={SEEDED_SESSION}; theme=dark",
            "-H", f"Proxy-Authorization: Basic {SEEDED_PROXY_BASIC}",
        ]
        (OUT / "curl-verbose.txt").write_text(_curl_against_local_server(curl_argv))


def _make_key_and_cert(work: Path) -> tuple[Path, Path, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    key_path = work / "tls.key"
    cert_path = work / "tls.crt"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path, key


def _make_jwt(key: ec.EllipticCurvePrivateKey) -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    claims = {"iss": "https://issuer.example.test", "sub": "user-42", "aud": "shop",
              "email": "jane@example.test", "iat": now, "exp": now + datetime.timedelta(hours=1)}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "seeded-key-1"})


class _CookieHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (name fixed by BaseHTTPRequestHandler)
        self.send_response(200)
        self.send_header("Set-Cookie", f"session={SEEDED_SESSION}; Path=/; HttpOnly")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _curl_against_local_server(curl_argv: list[str]) -> str:
    server = http.server.HTTPServer(("127.0.0.1", 0), _CookieHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/orders"
        completed = subprocess.run(curl_argv + [url], capture_output=True, text=True,
                                   timeout=TIMEOUT_S, check=True)
    finally:
        server.shutdown()
        server.server_close()
    command = " ".join(f"'{part}'" if " " in part else part for part in curl_argv + [url])
    return f"$ {command}\n{completed.stderr}"


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=True).stdout


if __name__ == "__main__":
    main()
