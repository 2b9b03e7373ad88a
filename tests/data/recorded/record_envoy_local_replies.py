"""Record Envoy's local replies for JWT, RBAC, rate-limit and upstream failures.

Runs the real `.venv/bin/envoy` on 127.0.0.1 with:

- a jwt_authn filter with a local JWKS (ES256, kid `key-1`), and requests with
  a valid, an expired, a not-yet-valid, a wrong-issuer, an unknown-kid, a
  wrong-audience, a badly signed, a malformed and a missing token;
- a jwt_authn provider whose `remote_jwks` URI is https while its cluster has
  no TLS transport socket (the fetch fails);
- Istio's shape of RequestAuthentication plus `requestPrincipals`: jwt_authn
  with `allow_missing` followed by RBAC that needs a verified JWT payload;
- RBAC with no matching ALLOW policy and with a matching DENY policy;
- a local rate limit of one request per minute;
- upstream clusters that fail, recorded a second time with the transport
  failure reason in the reply body (Envoy prints it when the runtime flag
  hide_transport_failure_reason_in_response_body is false, as older
  releases always did): no endpoints, a closed port, a server that
  closes the connection, a circuit breaker that allows nothing, and TLS to
  `openssl s_server` peers with an expired certificate, a certificate for
  another name, a plaintext HTTP server, a peer that rejects Envoy's client
  certificate (TLS 1.2 and TLS 1.3), a peer that requires a client certificate
  Envoy does not send, and a plaintext client to a TLS peer.

It saves each curl transcript under `envoy-local-replies/curl/`, the access
logs in Istio's TEXT (1.24) and JSON formats, Envoy's own log lines about
jwt_authn, RBAC and TLS, the Envoy configuration (which includes the inline
JWKS), the JWKS, and the Istio RequestAuthentication and AuthorizationPolicy
that the Istio-shaped route mirrors.

Usage: .venv/bin/python tests/data/recorded/record_envoy_local_replies.py
Needs curl and openssl on PATH. Every process binds to 127.0.0.1 and is
stopped on exit.
"""

from __future__ import annotations

import datetime
import http.server
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pki import make_pki  # noqa: E402
from record_envoy import ISTIO_JSON, ISTIO_TEXT_124  # noqa: E402

ENVOY = Path(sys.prefix) / "bin" / "envoy"
OUT = HERE / "envoy-local-replies"
TIMEOUT_S = 10

ISSUER = "https://issuer.example.test"
REMOTE_ISSUER = "https://remote-issuer.example.test"
AUDIENCE = "orders"
KID = "key-1"
TRANSPORT_REASON_FLAG = "envoy.reloadable_features.hide_transport_failure_reason_in_response_body"

# Envoy log lines worth keeping: jwt_authn and RBAC debug lines, TLS failure
# reasons, and every warning or error. The startup listing of extensions and
# the multi-line config dump are left out.
ENVOY_LOG_KEEP = re.compile(
    r"^\[[^]]+\]\[\d+\]\[(?:(?:debug|info)\]\[(?:jwt|rbac)\]|warning\]|error\]|critical\])"
    r"|TLS_error|failure reason")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- tokens -----------------------------------------------------------------


def make_tokens(key: ec.EllipticCurvePrivateKey, now: datetime.datetime) -> dict[str, str]:
    other_key = ec.generate_private_key(ec.SECP256R1())
    hour = datetime.timedelta(hours=1)

    def token(claims: dict, signing_key=key, kid: str = KID) -> str:
        base = {"iss": ISSUER, "sub": "user-42", "aud": AUDIENCE,
                "email": "jane@example.test", "iat": now, "exp": now + hour}
        base.update(claims)
        base = {name: value for name, value in base.items() if value is not None}
        return jwt.encode(base, signing_key, algorithm="ES256", headers={"kid": kid})

    return {
        "valid": token({}),
        "expired": token({"iat": now - 2 * hour, "exp": now - hour}),
        "not-yet-valid": token({"iat": now + hour, "nbf": now + hour, "exp": now + 2 * hour}),
        "wrong-issuer": token({"iss": "https://other-issuer.example.test"}),
        "unknown-kid": token({}, kid="key-rotated"),
        "wrong-audience": token({"aud": "payments"}),
        "bad-signature": token({}, signing_key=other_key),
        "remote-issuer": token({"iss": REMOTE_ISSUER}),
    }


def jwks_of(key: ec.EllipticCurvePrivateKey) -> str:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": KID, "alg": "ES256", "use": "sig"})
    return json.dumps({"keys": [jwk]})


# --- Envoy configuration ----------------------------------------------------


def access_logs(logdir: Path) -> list[dict]:
    def file_log(name: str, log_format: dict) -> dict:
        return {"name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(logdir / name), "log_format": log_format}}

    return [
        file_log("access-istio-text.log", {"text_format_source": {"inline_string": ISTIO_TEXT_124}}),
        file_log("access-istio-json.log", {"json_format": ISTIO_JSON}),
    ]


def cluster(name: str, port: int | None, tls: dict | None = None, **extra: object) -> dict:
    endpoints = []
    if port is not None:
        endpoints = [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": "127.0.0.1", "port_value": port}}}}]}]
    config = {"name": name, "type": "STATIC", "connect_timeout": "1s",
              "load_assignment": {"cluster_name": name, "endpoints": endpoints}}
    if tls is not None:
        config["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            **tls}}
    config.update(extra)
    return config


def upstream_tls(pki: dict, client: str | None = None, san: str | None = None,
                 max_version: str | None = None) -> dict:
    validation: dict = {"trusted_ca": {"filename": str(pki["root-ca"].cert)}}
    if san is not None:
        validation["match_typed_subject_alt_names"] = [
            {"san_type": "DNS", "matcher": {"exact": san}}]
    context: dict = {"validation_context": validation}
    if max_version is not None:
        # Envoy's upstream TLS stops at TLS 1.2 unless configured otherwise.
        context["tls_params"] = {"tls_maximum_protocol_version": max_version}
    if client is not None:
        context["tls_certificates"] = [{
            "certificate_chain": {"filename": str(pki[client].cert)},
            "private_key": {"filename": str(pki[client].key)}}]
    return {"common_tls_context": context, "sni": "orders.shop.svc.cluster.local"}


def jwt_filter(jwks: str, ports: dict[str, int]) -> dict:
    return {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {
            "local": {"issuer": ISSUER, "audiences": [AUDIENCE],
                      "local_jwks": {"inline_string": jwks},
                      "payload_in_metadata": "payload", "forward": True},
            "remote": {"issuer": REMOTE_ISSUER,
                       "remote_jwks": {"http_uri": {
                           "uri": f"https://127.0.0.1:{ports['jwks-tls']}/jwks.json",
                           "cluster": "jwks_without_tls", "timeout": "2s"}},
                       "forward": True},
        },
        "rules": [
            {"match": {"prefix": "/jwt/remote"}, "requires": {"provider_name": "remote"}},
            {"match": {"prefix": "/jwt/istio"}, "requires": {"requires_any": {"requirements": [
                {"provider_name": "local"}, {"allow_missing": {}}]}}},
            {"match": {"prefix": "/jwt"}, "requires": {"provider_name": "local"}},
        ],
    }}


def rbac_filter(rules: dict) -> dict:
    return {"name": "envoy.filters.http.rbac", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": rules}}


REQUEST_PRINCIPAL_POLICY = {"action": "ALLOW", "policies": {
    "ns[shop]-policy[require-jwt]-rule[0]": {
        "permissions": [{"any": True}],
        "principals": [{"metadata": {
            "filter": "envoy.filters.http.jwt_authn",
            "path": [{"key": "payload"}, {"key": "iss"}],
            "value": {"string_match": {"exact": ISSUER}}}}]}}}

ALLOW_ADMIN_HEADER_POLICY = {"action": "ALLOW", "policies": {
    "ns[shop]-policy[allow-admins]-rule[0]": {
        "permissions": [{"any": True}],
        "principals": [{"header": {"name": "x-role", "string_match": {"exact": "admin"}}}]}}}

DENY_ADMIN_PATH_POLICY = {"action": "DENY", "policies": {
    "ns[shop]-policy[deny-admin]-rule[0]": {
        "permissions": [{"url_path": {"path": {"prefix": "/rbac/deny/admin"}}}],
        "principals": [{"any": True}]}}}


# The Istio resources whose translation the /jwt/istio route runs: a
# RequestAuthentication that lets token-less requests through, and an
# AuthorizationPolicy that then requires a request principal.
ISTIO_EQUIVALENT = f"""\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: orders-jwt
  namespace: shop
spec:
  selector:
    matchLabels:
      app: orders
  jwtRules:
  - issuer: "{ISSUER}"
    audiences:
    - {AUDIENCE}
    jwksUri: "{ISSUER}/.well-known/jwks.json"
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: require-jwt
  namespace: shop
spec:
  selector:
    matchLabels:
      app: orders
  action: ALLOW
  rules:
  - from:
    - source:
        requestPrincipals: ["{ISSUER}/*"]
"""


def route(prefix: str, cluster_name: str, per_filter: dict | None = None) -> dict:
    config = {"name": "default", "match": {"prefix": prefix}, "route": {"cluster": cluster_name}}
    if per_filter:
        config["typed_per_filter_config"] = per_filter
    return config


def rbac_per_route(rules: dict) -> dict:
    return {"envoy.filters.http.rbac": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
        "rbac": {"rules": rules}}}


def envoy_config(ports: dict[str, int], pki: dict, jwks: str, logdir: Path) -> dict:
    local_ratelimit = {"envoy.filters.http.local_ratelimit": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": "http_local_rate_limiter",
        "token_bucket": {"max_tokens": 1, "tokens_per_fill": 1, "fill_interval": "60s"},
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"},
                           "runtime_key": "local_rate_limit_enabled"},
        "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"},
                            "runtime_key": "local_rate_limit_enforced"}}}
    routes = [
        route("/jwt/istio", "app", rbac_per_route(REQUEST_PRINCIPAL_POLICY)),
        route("/jwt", "app"),
        route("/rbac/allow", "app", rbac_per_route(ALLOW_ADMIN_HEADER_POLICY)),
        route("/rbac/deny", "app", rbac_per_route(DENY_ADMIN_PATH_POLICY)),
        route("/ratelimit", "app", local_ratelimit),
        route("/upstream/no-endpoints", "no_endpoints"),
        route("/upstream/closed-port", "closed_port"),
        route("/upstream/closes-connection", "closes_connection"),
        route("/upstream/overflow", "overflow"),
        route("/upstream/tls-expired", "tls_expired"),
        route("/upstream/tls-other-name", "tls_other_name"),
        route("/upstream/tls-to-plaintext", "tls_to_plaintext"),
        route("/upstream/tls12-unknown-ca-client", "tls12_unknown_ca_client"),
        route("/upstream/tls13-unknown-ca-client", "tls13_unknown_ca_client"),
        route("/upstream/tls13-no-client-cert", "tls13_no_client_cert"),
        route("/upstream/tls12-expired-client-cert", "tls12_expired_client_cert"),
        route("/upstream/plaintext-to-tls", "plaintext_to_tls"),
        route("/", "app"),
    ]
    disabled_rbac = {"action": "ALLOW", "policies": {"allow-all": {
        "permissions": [{"any": True}], "principals": [{"any": True}]}}}
    hcm = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "inbound_0.0.0.0_8080",
            "route_config": {"name": "default", "virtual_hosts": [
                {"name": "orders", "domains": ["*"], "routes": routes}]},
            "http_filters": [
                jwt_filter(jwks, ports),
                rbac_filter(disabled_rbac),
                {"name": "envoy.filters.http.local_ratelimit", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                    "stat_prefix": "http_local_rate_limiter"}},
                {"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
            ],
            "access_log": access_logs(logdir),
        },
    }
    zero_breaker = {"thresholds": [{"max_connections": 0, "max_pending_requests": 0,
                                    "max_requests": 0}]}
    clusters = [
        cluster("app", ports["app"]),
        cluster("jwks_without_tls", ports["jwks-tls"]),
        cluster("no_endpoints", None),
        cluster("closed_port", ports["closed"]),
        cluster("closes_connection", ports["closer"]),
        cluster("overflow", ports["app"], circuit_breakers=zero_breaker),
        cluster("tls_expired", ports["s-expired"], upstream_tls(pki)),
        cluster("tls_other_name", ports["s-other-name"],
                upstream_tls(pki, san="orders.shop.svc.cluster.local")),
        cluster("tls_to_plaintext", ports["app"], upstream_tls(pki)),
        cluster("tls12_unknown_ca_client", ports["s-tls12-mtls-other-ca"],
                upstream_tls(pki, client="client")),
        cluster("tls13_unknown_ca_client", ports["s-tls13-mtls-other-ca"],
                upstream_tls(pki, client="client", max_version="TLSv1_3")),
        cluster("tls13_no_client_cert", ports["s-tls13-mtls"],
                upstream_tls(pki, max_version="TLSv1_3")),
        cluster("tls12_expired_client_cert", ports["s-tls12-mtls"],
                upstream_tls(pki, client="client-expired")),
        cluster("plaintext_to_tls", ports["s-valid"]),
    ]
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ports["admin"]}}},
        # /runtime_modify on the admin port needs an admin layer.
        "layered_runtime": {"layers": [{"name": "admin", "admin_layer": {}}]},
        "static_resources": {
            "listeners": [{"name": "inbound", "address": {"socket_address": {
                "address": "127.0.0.1", "port_value": ports["http"]}},
                "filter_chains": [{"filters": [hcm]}]}],
            "clusters": clusters,
        },
    }


# --- peers ------------------------------------------------------------------


class AppHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b"hello from orders\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def closing_server(port: int, stop: threading.Event) -> threading.Thread:
    """Accept connections and close them at once, like an app that crashes mid-request."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.settimeout(0.2)

    def serve() -> None:
        with listener:
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                connection.recv(1024)
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def s_server(port: int, cert: Path, key: Path, *options: str) -> subprocess.Popen:
    # -verify_return_error makes s_server abort the handshake on a bad client
    # certificate; without it s_server only notes the error and carries on.
    return subprocess.Popen(
        ["openssl", "s_server", "-verify_return_error", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
         "-key", str(key), "-www", "-quiet", *options],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_port(port: int) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {TIMEOUT_S} s")


def wait_ready(admin_port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=2) as response:
                if response.read().strip() == b"LIVE":
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("Envoy did not become ready within 20 s")


def runtime_modify(admin_port: int, key: str, value: str) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{admin_port}/runtime_modify?{key}={value}", method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        response.read()


def curl(name: str, url: str, *headers: str) -> None:
    argv = ["curl", "-sS", "-i", "--max-time", "8"]
    for header in headers:
        argv += ["-H", header]
    argv.append(url)
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
    shown = " ".join(f"'{part}'" if " " in part else part for part in argv)
    (OUT / "curl" / f"{name}.txt").write_text(f"$ {shown}\n{completed.stdout}{completed.stderr}")


# --- main -------------------------------------------------------------------


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="record-local-replies-"))
    pki = make_pki(workdir / "pki")
    key = ec.generate_private_key(ec.SECP256R1())
    jwks = jwks_of(key)
    tokens = make_tokens(key, datetime.datetime.now(datetime.timezone.utc))

    names = ("admin", "http", "app", "jwks-tls", "closed", "closer", "s-expired", "s-other-name",
             "s-tls12-mtls-other-ca", "s-tls13-mtls-other-ca", "s-tls13-mtls", "s-tls12-mtls",
             "s-valid")
    ports = {name: free_port() for name in names}

    stop = threading.Event()
    app = http.server.ThreadingHTTPServer(("127.0.0.1", ports["app"]), AppHandler)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    closing_server(ports["closer"], stop)
    peers = [
        s_server(ports["jwks-tls"], pki["server"].cert, pki["server"].key),
        s_server(ports["s-valid"], pki["server"].cert, pki["server"].key),
        s_server(ports["s-expired"], pki["server-expired"].cert, pki["server-expired"].key),
        s_server(ports["s-other-name"], pki["server-other-name"].cert, pki["server-other-name"].key),
        s_server(ports["s-tls12-mtls-other-ca"], pki["server"].cert, pki["server"].key,
                 "-tls1_2", "-Verify", "1", "-CAfile", str(pki["other-ca"].cert)),
        s_server(ports["s-tls13-mtls-other-ca"], pki["server"].cert, pki["server"].key,
                 "-tls1_3", "-Verify", "1", "-CAfile", str(pki["other-ca"].cert)),
        s_server(ports["s-tls13-mtls"], pki["server"].cert, pki["server"].key,
                 "-tls1_3", "-Verify", "1", "-CAfile", str(pki["root-ca"].cert)),
        s_server(ports["s-tls12-mtls"], pki["server"].cert, pki["server"].key,
                 "-tls1_2", "-Verify", "1", "-CAfile", str(pki["root-ca"].cert)),
    ]

    OUT.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(OUT / "curl", ignore_errors=True)
    (OUT / "curl").mkdir()
    config = envoy_config(ports, pki, jwks, workdir)
    config_path = workdir / "envoy.json"
    config_path.write_text(json.dumps(config))
    envoy_log = workdir / "envoy.log"
    envoy = subprocess.Popen(
        [str(ENVOY), "-c", str(config_path), "--base-id", str(ports["admin"]), "-l", "info",
         "--component-log-level", "jwt:debug,rbac:debug,connection:debug,pool:debug",
         "--log-path", str(envoy_log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for peer_port in ("jwks-tls", "s-valid", "s-expired", "s-other-name"):
            wait_port(ports[peer_port])
        wait_ready(ports["admin"])
        base = f"http://127.0.0.1:{ports['http']}"

        for name, token in tokens.items():
            path = "/jwt/remote/orders" if name == "remote-issuer" else "/jwt/orders"
            curl(f"jwt-{name}", base + path, f"Authorization: Bearer {token}")
        curl("jwt-missing", base + "/jwt/orders")
        curl("jwt-malformed", base + "/jwt/orders", "Authorization: Bearer not.a-token")
        curl("jwt-istio-missing-token", base + "/jwt/istio/orders")
        curl("jwt-istio-valid-token", base + "/jwt/istio/orders",
             f"Authorization: Bearer {tokens['valid']}")
        curl("rbac-no-allow-matched", base + "/rbac/allow/orders")
        curl("rbac-deny-matched", base + "/rbac/deny/admin/users", "x-role: admin")
        curl("rbac-denied-with-token", base + "/rbac/allow/orders",
             f"Authorization: Bearer {tokens['valid']}")
        curl("ratelimit-first", base + "/ratelimit/orders")
        curl("ratelimit-second", base + "/ratelimit/orders")
        for name in ("no-endpoints", "closed-port", "closes-connection", "overflow",
                     "tls-expired", "tls-other-name", "tls-to-plaintext",
                     "tls12-unknown-ca-client", "tls13-unknown-ca-client",
                     "tls13-no-client-cert", "tls12-expired-client-cert", "plaintext-to-tls"):
            curl(f"upstream-{name}", f"{base}/upstream/{name}/orders")

        # Releases before the runtime flag below printed the transport failure
        # reason in the body, and 1.40 still does when the flag is false.
        runtime_modify(ports["admin"], TRANSPORT_REASON_FLAG, "false")
        for name in ("closed-port", "tls-expired", "tls-to-plaintext", "tls12-unknown-ca-client"):
            curl(f"upstream-{name}-with-transport-reason", f"{base}/upstream/{name}/orders")
        time.sleep(1.5)  # the file access logger flushes every second
    finally:
        envoy.terminate()
        envoy.wait(timeout=10)
        for peer in peers:
            peer.terminate()
            peer.wait(timeout=10)
        stop.set()
        app.shutdown()

    for name in ("access-istio-text.log", "access-istio-json.log"):
        shutil.copy(workdir / name, OUT / name)
    kept = [line for line in envoy_log.read_text().splitlines() if ENVOY_LOG_KEEP.search(line)]
    (OUT / "envoy.log").write_text("\n".join(kept) + "\n")
    (OUT / "envoy-config.yaml").write_text(
        yaml.safe_dump(_portable(config, workdir), sort_keys=False, width=120))
    (OUT / "jwks.json").write_text(json.dumps(json.loads(jwks), indent=2) + "\n")
    (OUT / "istio-require-jwt.yaml").write_text(ISTIO_EQUIVALENT)
    shutil.rmtree(workdir)


def _portable(config: dict, workdir: Path) -> dict:
    """Replace the temporary folder in file paths, so the saved config reads the same each run."""
    text = json.dumps(config).replace(str(workdir), "/etc/envoy")
    return json.loads(text)


if __name__ == "__main__":
    main()
