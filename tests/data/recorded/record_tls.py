"""Record real `openssl s_client` and `openssl x509` outputs for the TLS parser tests.

Makes a throwaway PKI (see pki.py), starts peers on 127.0.0.1 and saves
what the real tools print:

- s_client against `openssl s_server` peers: a valid chain, an expired
  server certificate, a server from a CA the client does not trust, a name
  the certificate does not carry (`-verify_hostname`), a chain under an
  expired root, a plaintext HTTP server (wrong version number), and servers
  that reject the client's certificate (unknown CA, expired) or require one
  the client does not send, over TLS 1.2 and TLS 1.3;
- s_client against the real Envoy (`.venv/bin/envoy`) as a TLS server that
  requires client certificates from the mesh CA, with a client certificate
  from another CA, over TLS 1.2 and TLS 1.3: TLS 1.2 fails in the handshake,
  TLS 1.3 only when the client reads;
- `openssl x509 -text -noout` of the server, expired server, client and
  root certificates, and the public certificates as PEM files.

Usage: .venv/bin/python tests/data/recorded/record_tls.py
Needs openssl on PATH. Every process binds to 127.0.0.1 and is stopped on exit.
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pki import Issued, make_pki  # noqa: E402

ENVOY = Path(sys.prefix) / "bin" / "envoy"
OUT = HERE / "tls"
TIMEOUT_S = 10
REQUEST = b"GET / HTTP/1.0\r\nHost: orders.shop.svc.cluster.local\r\n\r\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {TIMEOUT_S} s")


class PlainHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def s_server(port: int, server: Issued, *options: str) -> subprocess.Popen:
    # -verify_return_error makes s_server abort the handshake on a bad client
    # certificate; without it s_server only notes the error and carries on.
    process = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(server.cert),
         "-key", str(server.key), "-www", "-quiet", "-verify_return_error", *options],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return process


def s_client(name: str, port: int, pki_dir: Path, *options: str) -> None:
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
            "-servername", "orders.shop.svc.cluster.local", "-ign_eof", *options]
    completed = subprocess.run(argv, input=REQUEST, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=TIMEOUT_S)
    shown = " ".join(argv).replace(str(pki_dir) + "/", "")
    output = completed.stdout.decode("utf-8", errors="replace")
    (OUT / f"s_client-{name}.txt").write_text(f"$ {shown}\n{output}")


def x509_text(name: str, cert: Path) -> None:
    argv = ["openssl", "x509", "-in", str(cert), "-text", "-noout"]
    output = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S,
                            check=True).stdout
    (OUT / f"x509-text-{name}.txt").write_text(f"$ openssl x509 -in {cert.name} -text -noout\n{output}")


def envoy_tls_server(pki: dict[str, Issued], ports: dict[str, int], workdir: Path) -> subprocess.Popen:
    def listener(name: str, port: int, version: str) -> dict:
        context = {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": True,
            "common_tls_context": {
                "tls_params": {"tls_minimum_protocol_version": version,
                               "tls_maximum_protocol_version": version},
                "tls_certificates": [{"certificate_chain": {"filename": str(pki["server"].cert)},
                                      "private_key": {"filename": str(pki["server"].key)}}],
                "validation_context": {"trusted_ca": {"filename": str(pki["root-ca"].cert)}},
            },
        }
        hcm = {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": name,
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                {"match": {"prefix": "/"}, "direct_response": {"status": 200}}]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}
        return {"name": name,
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [hcm], "transport_socket": {
                    "name": "envoy.transport_sockets.tls", "typed_config": context}}]}

    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ports["admin"]}}},
        "static_resources": {"listeners": [
            listener("mtls12", ports["envoy-tls12"], "TLSv1_2"),
            listener("mtls13", ports["envoy-tls13"], "TLSv1_3"),
        ]},
    }
    config_path = workdir / "envoy.json"
    config_path.write_text(json.dumps(config))
    process = subprocess.Popen(
        [str(ENVOY), "-c", str(config_path), "--base-id", str(ports["admin"]), "-l", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports['admin']}/ready", timeout=2) as response:
                if response.read().strip() == b"LIVE":
                    return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("Envoy did not become ready within 20 s")


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="record-tls-"))
    pki_dir = workdir / "pki"
    pki = make_pki(pki_dir)
    names = ("valid", "expired", "other-name", "under-expired-root", "plain", "mtls12-other-ca",
             "mtls13-other-ca", "mtls12", "mtls13", "admin", "envoy-tls12", "envoy-tls13")
    ports = {name: free_port() for name in names}

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", ports["plain"]), PlainHandler)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    processes: list[subprocess.Popen] = []
    try:
        processes += [
            s_server(ports["valid"], pki["server"]),
            s_server(ports["expired"], pki["server-expired"]),
            s_server(ports["other-name"], pki["server-other-name"]),
            s_server(ports["under-expired-root"], pki["server-under-expired-root"]),
            s_server(ports["mtls12-other-ca"], pki["server"], "-tls1_2", "-Verify", "1",
                     "-CAfile", str(pki["other-ca"].cert)),
            s_server(ports["mtls13-other-ca"], pki["server"], "-tls1_3", "-Verify", "1",
                     "-CAfile", str(pki["other-ca"].cert)),
            s_server(ports["mtls12"], pki["server"], "-tls1_2", "-Verify", "1",
                     "-CAfile", str(pki["root-ca"].cert)),
            s_server(ports["mtls13"], pki["server"], "-tls1_3", "-Verify", "1",
                     "-CAfile", str(pki["root-ca"].cert)),
        ]
        processes.append(envoy_tls_server(pki, ports, workdir))

        root = ("-CAfile", str(pki["root-ca"].cert))
        client = ("-cert", str(pki["client"].cert), "-key", str(pki["client"].key))
        client_expired = ("-cert", str(pki["client-expired"].cert),
                          "-key", str(pki["client-expired"].key))
        client_other = ("-cert", str(pki["client-other-ca"].cert),
                        "-key", str(pki["client-other-ca"].key))

        s_client("verified", ports["valid"], pki_dir, *root, "-verify_return_error",
                 "-verify_hostname", "orders.shop.svc.cluster.local", "-showcerts")
        s_client("expired-server", ports["expired"], pki_dir, *root, "-verify_return_error")
        s_client("expired-server-no-verify-error", ports["expired"], pki_dir, *root)
        s_client("unknown-ca", ports["valid"], pki_dir, "-CAfile", str(pki["other-ca"].cert),
                 "-verify_return_error")
        s_client("san-mismatch", ports["other-name"], pki_dir, *root, "-verify_return_error",
                 "-verify_hostname", "orders.shop.svc.cluster.local")
        s_client("expired-root", ports["under-expired-root"], pki_dir,
                 "-CAfile", str(pki["expired-root-ca"].cert), "-verify_return_error")
        s_client("plaintext-server", ports["plain"], pki_dir, *root)
        s_client("tls12-client-cert-unknown-ca", ports["mtls12-other-ca"], pki_dir, *root, *client)
        s_client("tls13-client-cert-unknown-ca", ports["mtls13-other-ca"], pki_dir, *root, *client)
        s_client("tls12-client-cert-expired", ports["mtls12"], pki_dir, *root, *client_expired)
        s_client("tls13-no-client-cert", ports["mtls13"], pki_dir, *root)
        s_client("envoy-tls12-client-cert-other-ca", ports["envoy-tls12"], pki_dir, *root,
                 *client_other)
        s_client("envoy-tls13-client-cert-other-ca", ports["envoy-tls13"], pki_dir, *root,
                 *client_other)
        s_client("envoy-tls13-mtls-ok", ports["envoy-tls13"], pki_dir, *root, *client)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        plain.shutdown()

    for role in ("server", "server-expired", "client", "root-ca", "expired-root-ca"):
        x509_text(role, pki[role].cert)
        shutil.copy(pki[role].cert, OUT / f"{role}.crt")
    bundle = b"".join(pki[role].cert.read_bytes() for role in ("root-ca", "other-ca", "expired-root-ca"))
    (OUT / "trust-bundle.pem").write_bytes(bundle)
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
