"""Record real Envoy admin outputs and access logs for the config parsers and checks.

Starts `.venv/bin/envoy` on 127.0.0.1 (every port, the admin port included,
chosen free at run time) with a configuration shaped like an Istio sidecar:

- an mTLS inbound listener (TLS inspector, a filter chain that matches only
  TLS and requires a client certificate) whose HTTP filters are jwt_authn
  (an inline JWKS provider and a remote JWKS provider fetched through a
  cluster without TLS), an RBAC DENY filter, an RBAC ALLOW filter naming one
  SPIFFE principal (with a shadow DENY rule), and local_ratelimit configured
  per route: a route bucket of 5 with a 1-token descriptor bucket for
  `/limited/bar`, and a shadow-mode route (enabled, not enforced);
- two plaintext outbound listeners that originate mTLS to the inbound one
  with the client identities `default/frontend` and `team-b/default`, and
  route `/closed` to a port nothing listens on;
- a cluster whose certificate comes from an SDS server that never answers,
  so its secret stays in `dynamic_warming_secrets`.

It sends requests through both identities (allowed, DENY-matched,
no-ALLOW-matched, rate limited, shadow limited, connect failure, a valid and
an expired JWT) and one plaintext connection to the mTLS port, then saves
`/stats`, `/stats/prometheus`, `/certs`, `/clusters`, `/clusters?format=json`,
`/config_dump` and both access logs into `envoy-admin/` next to this script.

Usage: .venv/bin/python tests/data/recorded/record_envoy_admin.py
Everything binds to 127.0.0.1; Envoy is stopped on exit and the temporary
keys are deleted.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "envoy-admin"
ENVOY = Path(sys.prefix) / "bin" / "envoy"
TIMEOUT_S = 5

# Istio's default TEXT access-log format since Istio 1.24.
ISTIO_TEXT_124 = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)

TRUST_DOMAIN = "cluster.local"
SERVER_CLUSTER = "outbound|8443||server.default.svc.cluster.local"
TEAM_B_CLUSTER = "outbound|8443|as-team-b|server.default.svc.cluster.local"
SDS_MISSING_CLUSTER = "outbound|8443|sds-missing|server.default.svc.cluster.local"
CLOSED_CLUSTER = "outbound|9090||down.default.svc.cluster.local"
JWKS_CLUSTER = "outbound|443||idp.example.com"
INBOUND_CLUSTER = "inbound|8443||"
JWT_ISSUER = "testing@secure.istio.io"
JWT_KID = "recorded-key-1"

TYPE = "type.googleapis.com/"
TLS_SOCKET = "envoy.transport_sockets.tls"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- certificates -----------------------------------------------------------------------------

def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, TRUST_DOMAIN),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki() -> dict[str, tuple[str, str]]:
    """Return PEM (certificate chain, private key) pairs for the root, server and clients."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (x509.CertificateBuilder()
            .subject_name(_name("Recorded Mesh Root CA")).issuer_name(_name("Recorded Mesh Root CA"))
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                           critical=True)
            .sign(root_key, hashes.SHA256()))
    root_pem = root.public_bytes(serialization.Encoding.PEM).decode()

    def leaf(namespace: str, account: str) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        spiffe = f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{account}"
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([])).issuer_name(root.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe)]),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(root_key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        return cert.public_bytes(serialization.Encoding.PEM).decode() + root_pem, key_pem

    return {
        "root": (root_pem, ""),
        "server": leaf("default", "server"),
        "frontend": leaf("default", "frontend"),
        "team-b": leaf("team-b", "default"),
    }


def make_jwks() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    jwks = {"keys": [{"kty": "RSA", "kid": JWT_KID, "alg": "RS256", "use": "sig",
                      "n": b64(numbers.n), "e": b64(numbers.e)}]}
    return key, json.dumps(jwks)


# --- Envoy configuration ----------------------------------------------------------------------

def socket_address(port: int) -> dict:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def file_log(path: Path) -> list[dict]:
    return [{"name": "envoy.access_loggers.file", "typed_config": {
        "@type": TYPE + "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": str(path),
        "log_format": {"text_format_source": {"inline_string": ISTIO_TEXT_124}}}}]


def spiffe_matcher(namespace: str, account: str) -> dict:
    return {"authenticated": {"principal_name": {
        "exact": f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{account}"}}}


def inbound_http_filters(jwks: str) -> list[dict]:
    jwt_authn = {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": TYPE + "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                "origins-0": {"issuer": JWT_ISSUER, "local_jwks": {"inline_string": jwks},
                              "payload_in_metadata": JWT_ISSUER, "forward": True},
                "origins-1": {
                    "issuer": "https://idp.example.com/",
                    "audiences": ["orders-api"],
                    "remote_jwks": {"http_uri": {"uri": "https://idp.example.com/.well-known/jwks.json",
                                                 "cluster": JWKS_CLUSTER, "timeout": "1s"},
                                    "cache_duration": "300s"},
                },
            },
            "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
                {"provider_name": "origins-0"}, {"provider_name": "origins-1"}, {"allow_missing": {}}]}}}],
        },
    }
    rbac_deny = {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": TYPE + "envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "DENY", "policies": {
                "ns[default]-policy[deny-admin]-rule[0]": {
                    "permissions": [{"and_rules": {"rules": [{"or_rules": {"rules": [
                        {"url_path": {"path": {"exact": "/admin"}}}]}}]}}],
                    "principals": [{"and_ids": {"ids": [{"any": True}]}}]}}},
            "shadow_rules_stat_prefix": "istio_dry_run_allow_",
        },
    }
    rbac_allow = {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": TYPE + "envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": {
                "ns[default]-policy[allow-frontend]-rule[0]": {
                    "permissions": [{"and_rules": {"rules": [{"any": True}]}}],
                    "principals": [{"and_ids": {"ids": [{"or_ids": {"ids": [
                        spiffe_matcher("default", "frontend")]}}]}}]},
                "ns[default]-policy[allow-health]-rule[0]": {
                    "permissions": [{"and_rules": {"rules": [{"or_rules": {"rules": [
                        {"url_path": {"path": {"prefix": "/healthz"}}}]}}]}}],
                    "principals": [{"and_ids": {"ids": [{"any": True}]}}]}}},
            "shadow_rules": {"action": "DENY", "policies": {
                "ns[default]-policy[dry-run-deny-team-b]-rule[0]": {
                    "permissions": [{"and_rules": {"rules": [{"any": True}]}}],
                    "principals": [{"and_ids": {"ids": [{"or_ids": {"ids": [
                        {"authenticated": {"principal_name": {"safe_regex": {"regex": ".*/ns/team-b/.*"}}}}]}}]}}]}}},
            "shadow_rules_stat_prefix": "istio_dry_run_allow_",
        },
    }
    local_ratelimit = {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": TYPE + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "http_local_rate_limiter",
        },
    }
    router = {"name": "envoy.filters.http.router",
              "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.router.v3.Router"}}
    return [jwt_authn, rbac_deny, rbac_allow, local_ratelimit, router]


def local_ratelimit_route_config(max_tokens: int, enforced_percent: int, descriptors: list[dict]) -> dict:
    config = {
        "@type": TYPE + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": "http_local_rate_limiter",
        "token_bucket": {"max_tokens": max_tokens, "tokens_per_fill": max_tokens, "fill_interval": "60s"},
        "filter_enabled": {"runtime_key": "local_rate_limit_enabled",
                           "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "filter_enforced": {"runtime_key": "local_rate_limit_enforced",
                            "default_value": {"numerator": enforced_percent, "denominator": "HUNDRED"}},
        "response_headers_to_add": [{"append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                                     "header": {"key": "x-local-rate-limit", "value": "true"}}],
    }
    if descriptors:
        config["descriptors"] = descriptors
    return config


def inbound_routes() -> dict:
    limited = local_ratelimit_route_config(5, 100, [{
        "entries": [{"key": "path", "value": "/limited/bar"}],
        "token_bucket": {"max_tokens": 1, "tokens_per_fill": 1, "fill_interval": "60s"}}])
    shadow = local_ratelimit_route_config(1, 0, [])
    return {
        "name": "inbound|8443||",
        "virtual_hosts": [{
            "name": "inbound|http|8443",
            "domains": ["*"],
            "routes": [
                {"name": "limited", "match": {"prefix": "/limited"},
                 "route": {"cluster": INBOUND_CLUSTER, "rate_limits": [{"actions": [{"request_headers": {
                     "header_name": ":path", "descriptor_key": "path"}}]}]},
                 "typed_per_filter_config": {"envoy.filters.http.local_ratelimit": limited}},
                {"name": "shadow", "match": {"prefix": "/shadow"}, "route": {"cluster": INBOUND_CLUSTER},
                 "typed_per_filter_config": {"envoy.filters.http.local_ratelimit": shadow}},
                {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": INBOUND_CLUSTER}},
            ],
        }],
    }


def backend_listener(port: int) -> dict:
    """Return the listener of the application behind the inbound sidecar, which returns 200 to every request."""
    routes = {"name": "backend", "virtual_hosts": [{"name": "backend", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}]}]}
    return {"name": "application", "address": socket_address(port), "filter_chains": [{"filters": [{
        "name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": TYPE + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "application",
            "route_config": routes,
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": TYPE + "envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}


def hcm(stat_prefix: str, route_config: dict, http_filters: list[dict], log: Path) -> dict:
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": TYPE + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "route_config": route_config,
        "http_filters": http_filters,
        "forward_client_cert_details": "APPEND_FORWARD",
        "set_current_client_cert_details": {"uri": True},
        "access_log": file_log(log)}}


def upstream_tls(sni: str, certificate_secret: str, sds_cluster: str | None = None) -> dict:
    certificate: dict = {"name": certificate_secret}
    if sds_cluster is not None:
        certificate["sds_config"] = {
            "initial_fetch_timeout": "1s",
            "resource_api_version": "V3",
            "api_config_source": {"api_type": "GRPC", "transport_api_version": "V3",
                                  "grpc_services": [{"envoy_grpc": {"cluster_name": sds_cluster}}]}}
    return {"name": TLS_SOCKET, "typed_config": {
        "@type": TYPE + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": sni,
        "common_tls_context": {
            "alpn_protocols": ["istio-peer-exchange", "istio"],
            "tls_certificate_sds_secret_configs": [certificate],
            "combined_validation_context": {
                "default_validation_context": {"match_typed_subject_alt_names": [{
                    "san_type": "URI",
                    "matcher": {"exact": f"spiffe://{TRUST_DOMAIN}/ns/default/sa/server"}}]},
                "validation_context_sds_secret_config": {"name": "ROOTCA"}}}}}


def static_cluster(name: str, port: int, transport_socket: dict | None = None, **extra: object) -> dict:
    cluster = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": socket_address(port)}}]}]},
    }
    if transport_socket is not None:
        cluster["transport_socket"] = transport_socket
    cluster.update(extra)
    return cluster


def envoy_config(ports: dict[str, int], pki: dict[str, tuple[str, str]], jwks: str, logs: Path) -> dict:
    def tls_secret(name: str, pair: tuple[str, str]) -> dict:
        return {"name": name, "tls_certificate": {"certificate_chain": {"inline_string": pair[0]},
                                                  "private_key": {"inline_string": pair[1]}}}

    inbound_tls = {"name": TLS_SOCKET, "typed_config": {
        "@type": TYPE + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "require_client_certificate": True,
        "common_tls_context": {
            "alpn_protocols": ["istio-peer-exchange", "h2", "http/1.1"],
            "tls_certificate_sds_secret_configs": [{"name": "default"}],
            "validation_context_sds_secret_config": {"name": "ROOTCA"}}}}
    inbound = {
        "name": "virtualInbound",
        "address": socket_address(ports["inbound"]),
        "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {
            "@type": TYPE + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
        "filter_chains": [{
            "name": "0.0.0.0_8443",
            "filter_chain_match": {"transport_protocol": "tls"},
            "transport_socket": inbound_tls,
            "filters": [hcm("inbound_0.0.0.0_8443", inbound_routes(), inbound_http_filters(jwks),
                            logs / "inbound.log")]}],
        "access_log": file_log(logs / "inbound.log"),
    }
    router = [{"name": "envoy.filters.http.router",
               "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.router.v3.Router"}}]

    def outbound(name: str, port: int, cluster: str) -> dict:
        routes = {"name": "8443", "virtual_hosts": [{"name": "server.default.svc.cluster.local:8443",
                                                     "domains": ["*"], "routes": [
            {"name": "closed", "match": {"prefix": "/closed"}, "route": {"cluster": CLOSED_CLUSTER}},
            {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]}
        return {"name": name, "address": socket_address(port),
                "filter_chains": [{"filters": [hcm(f"outbound_0.0.0.0_{port}", routes, router,
                                                   logs / "outbound.log")]}]}

    sni = "outbound_.8443_._.server.default.svc.cluster.local"
    thresholds = {"thresholds": [{"max_connections": 1024, "max_pending_requests": 1024,
                                  "max_requests": 1024, "max_retries": 3, "track_remaining": True}]}
    outlier = {"consecutive_5xx": 5, "interval": "10s", "base_ejection_time": "30s",
               "max_ejection_percent": 100}
    http2 = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": TYPE + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}}}}
    return {
        "node": {"id": "sidecar~127.0.0.1~server-7d4b9c8f6-abcde.default~default.svc.cluster.local",
                 "cluster": "server.default"},
        "admin": {"address": socket_address(ports["admin"])},
        # Histograms appear in /stats only after a stats flush (every 5 s by default).
        "stats_flush_interval": "1s",
        "static_resources": {
            "secrets": [
                tls_secret("default", pki["server"]),
                tls_secret("frontend", pki["frontend"]),
                tls_secret("team-b", pki["team-b"]),
                {"name": "ROOTCA", "validation_context": {"trusted_ca": {"inline_string": pki["root"][0]}}},
            ],
            "listeners": [
                inbound,
                outbound("outbound_frontend", ports["frontend"], SERVER_CLUSTER),
                outbound("outbound_team_b", ports["team-b"], TEAM_B_CLUSTER),
                backend_listener(ports["application"]),
            ],
            "clusters": [
                static_cluster(SERVER_CLUSTER, ports["inbound"], upstream_tls(sni, "frontend"),
                               circuit_breakers=thresholds, outlier_detection=outlier),
                static_cluster(TEAM_B_CLUSTER, ports["inbound"], upstream_tls(sni, "team-b")),
                static_cluster(SDS_MISSING_CLUSTER, ports["inbound"],
                               upstream_tls(sni, "spiffe://cluster.local/ns/default/sa/missing",
                                            sds_cluster="sds-grpc")),
                static_cluster(CLOSED_CLUSTER, ports["closed"],
                               circuit_breakers={"thresholds": [{"max_connections": 1,
                                                                 "max_pending_requests": 1}]},
                               outlier_detection=outlier),
                static_cluster(JWKS_CLUSTER, ports["closed"]),
                static_cluster(INBOUND_CLUSTER, ports["application"]),
                static_cluster("sds-grpc", ports["closed"], typed_extension_protocol_options=http2),
            ],
        },
    }


# --- traffic ----------------------------------------------------------------------------------

def request(port: int, path: str, token: str | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    headers = {"User-Agent": "record-envoy-admin", "Host": "server.default.svc.cluster.local:8443"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def plaintext_to_tls(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: server\r\nUser-Agent: plaintext-client\r\n\r\n")
        try:
            return sock.recv(4096)
        except (ConnectionResetError, socket.timeout):
            return b""


def send_traffic(ports: dict[str, int], signing_key: rsa.RSAPrivateKey) -> list[str]:
    now = int(time.time())
    valid = jwt.encode({"iss": JWT_ISSUER, "sub": "alice", "iat": now, "exp": now + 3600},
                       signing_key, algorithm="RS256", headers={"kid": JWT_KID})
    expired = jwt.encode({"iss": JWT_ISSUER, "sub": "alice", "iat": now - 7200, "exp": now - 3600},
                         signing_key, algorithm="RS256", headers={"kid": JWT_KID})
    frontend, team_b = ports["frontend"], ports["team-b"]
    plan: list[tuple[str, int, str, str | None]] = [
        ("frontend allowed", frontend, "/", None),
        ("frontend DENY /admin", frontend, "/admin", None),
        *[("frontend /limited/bar", frontend, "/limited/bar", None) for _ in range(3)],
        *[("frontend /limited/foo", frontend, "/limited/foo", None) for _ in range(6)],
        *[("frontend /shadow", frontend, "/shadow", None) for _ in range(3)],
        ("frontend /closed", frontend, "/closed", None),
        ("frontend valid JWT", frontend, "/", valid),
        ("frontend expired JWT", frontend, "/", expired),
        ("team-b no ALLOW matched", team_b, "/", None),
        ("team-b /healthz", team_b, "/healthz", None),
    ]
    results = []
    for label, port, path, token in plan:
        results.append(f"{label}: {request(port, path, token)}")
    reply = plaintext_to_tls(ports["inbound"])
    results.append(f"plaintext to the mTLS port: {len(reply)} bytes back")
    return results


# --- run --------------------------------------------------------------------------------------

def admin_get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=TIMEOUT_S) as response:
        return response.read().decode()


def wait_ready(admin_port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"envoy exited with status {process.returncode}")
        try:
            if admin_get(admin_port, "/ready").strip() == "LIVE":
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("envoy did not become ready within 30 s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def main() -> int:
    ports = {name: free_port() for name in ("admin", "inbound", "frontend", "team-b", "application",
                                           "closed")}
    pki = make_pki()
    signing_key, jwks = make_jwks()
    workdir = Path(tempfile.mkdtemp(prefix="record-envoy-admin-"))
    process = None
    try:
        config_path = workdir / "envoy.json"
        config_path.write_text(json.dumps(envoy_config(ports, pki, jwks, workdir), indent=1))
        with (workdir / "envoy.stderr").open("w") as stderr:
            process = subprocess.Popen(
                [str(ENVOY), "-c", str(config_path), "--use-dynamic-base-id", "--disable-hot-restart",
                 "--concurrency", "1", "-l", "warning"],
                stdout=subprocess.DEVNULL, stderr=stderr)
            wait_ready(ports["admin"], process)
            results = send_traffic(ports, signing_key)
            time.sleep(2.5)  # two stats flushes, so the histograms have values

            OUTPUT.mkdir(exist_ok=True)
            for path, name in (("/stats", "stats.txt"), ("/stats/prometheus", "stats-prometheus.txt"),
                               ("/certs", "certs.json"), ("/clusters", "clusters.txt"),
                               ("/clusters?format=json", "clusters.json"),
                               ("/config_dump", "config_dump.json")):
                (OUTPUT / name).write_text(admin_get(ports["admin"], path))

            # The file access logger writes its buffer out when Envoy stops.
            stop(process)
            for name in ("inbound.log", "outbound.log"):
                shutil.copy(workdir / name, OUTPUT / f"access-{name}")
        print("\n".join(results))
        print(f"saved to {OUTPUT}")
        return 0
    except (RuntimeError, TimeoutError, OSError):
        stderr_path = workdir / "envoy.stderr"
        if stderr_path.exists():
            sys.stderr.write(stderr_path.read_text()[-4000:])
        raise
    finally:
        if process is not None:
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
