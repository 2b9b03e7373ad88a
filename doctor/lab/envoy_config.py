"""Envoy v3 bootstraps for the mesh lab, shaped like what istiod sends a sidecar.

The client sidecar has an outbound HTTP listener whose route sends
`httpbin:8080` to the cluster `outbound|8080||httpbin.default.svc.cluster.local`
with Istio's default retry policy, and originates mTLS with its SPIFFE
certificate. The server sidecar has an inbound listener that requires mTLS
(PeerAuthentication STRICT), runs `jwt_authn` as istiod translates a
RequestAuthentication and `rbac` as it translates an ALLOW AuthorizationPolicy,
and forwards to `inbound|8080||`. Both write Istio's default TEXT access log.

Everything listens on 127.0.0.1 port 0, so the kernel picks free ports and
the lab reads them back from the admin endpoint. Unlike a real sidecar, the
config is static (no xDS), and certificates are static secrets named
`default` and `ROOTCA` as Istio's SDS names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Istio's default TEXT access log format since 1.24, which logs
# %UPSTREAM_CLUSTER_RAW% where earlier releases logged %UPSTREAM_CLUSTER%.
ISTIO_TEXT_ACCESS_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% '
    '%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)

# Istio's JSON access log (meshConfig accessLogEncoding: JSON): the fields of
# the TEXT format under Istio's key names.
ISTIO_JSON_ACCESS_LOG_FORMAT = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "route_name": "%ROUTE_NAME%",
}
ACCESS_LOG_FORMATS = ("text", "json")

LOOPBACK = "127.0.0.1"
SERVICE_PORT = 8080
JWT_PROVIDER = "origins-0"

_TLS_SOCKET = "envoy.transport_sockets.tls"
_UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_DOWNSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
_JWT_AUTHN = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
_FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"


@dataclass(frozen=True)
class Service:
    """The server workload as the mesh names it."""

    name: str = "httpbin"
    namespace: str = "default"
    port: int = SERVICE_PORT

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    @property
    def outbound_cluster(self) -> str:
        return f"outbound|{self.port}||{self.fqdn}"

    @property
    def inbound_cluster(self) -> str:
        return f"inbound|{self.port}||"

    @property
    def sni(self) -> str:
        return f"outbound_.{self.port}_._.{self.fqdn}"


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": LOOPBACK, "port_value": port}}


def _static_cluster(name: str, port: int, transport_socket: dict[str, Any] | None = None,
                    address: str = LOOPBACK) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "lb_policy": "LEAST_REQUEST",
        "common_lb_config": {},
        "circuit_breakers": {"thresholds": [{
            "max_connections": 4294967295, "max_pending_requests": 4294967295,
            "max_requests": 4294967295, "max_retries": 4294967295}]},
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": address, "port_value": port}}}}]}],
        },
    }
    if transport_socket is not None:
        cluster["transport_socket"] = transport_socket
    return cluster


def _secrets(cert_pem: str, key_pem: str, root_pem: str) -> list[dict[str, Any]]:
    return [
        {"name": "default", "tls_certificate": {
            "certificate_chain": {"inline_string": cert_pem},
            "private_key": {"inline_string": key_pem}}},
        {"name": "ROOTCA", "validation_context": {"trusted_ca": {"inline_string": root_pem}}},
    ]


def _access_log(path: str, log_format: str = "text") -> list[dict[str, Any]]:
    if log_format not in ACCESS_LOG_FORMATS:
        raise ValueError(f"access log format {log_format!r} is invalid; use one of {', '.join(ACCESS_LOG_FORMATS)}")
    if log_format == "json":
        envoy_format: dict[str, Any] = {"json_format": ISTIO_JSON_ACCESS_LOG_FORMAT}
    else:
        envoy_format = {"text_format_source": {"inline_string": ISTIO_TEXT_ACCESS_LOG_FORMAT}}
    return [{
        "name": "envoy.access_loggers.file",
        "typed_config": {"@type": _FILE_LOG, "path": path, "log_format": envoy_format},
    }]


# Istio's JSON access log keys for a connection, plus why the downstream TLS
# handshake failed, so a connection that never reached HTTP leaves a line.
CONNECTION_LOG_FORMAT = {
    "start_time": "%START_TIME%",
    "response_flags": "%RESPONSE_FLAGS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "downstream_transport_failure_reason": "%DOWNSTREAM_TRANSPORT_FAILURE_REASON%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "downstream_peer_uri_san": "%DOWNSTREAM_PEER_URI_SAN%",
    "downstream_tls_version": "%DOWNSTREAM_TLS_VERSION%",
}


def _listener_access_logs(access_log_path: str, connection_log_path: str | None,
                          log_format: str = "text") -> list[dict[str, Any]]:
    """Return Istio's listener access log (connections without a filter chain, flag NR) and the connection log."""
    logs = _access_log(access_log_path, log_format)
    logs[0]["filter"] = {"response_flag_filter": {"flags": ["NR"]}}
    if connection_log_path is not None:
        logs.append({
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": _FILE_LOG,
                "path": connection_log_path,
                "log_format": {"json_format": CONNECTION_LOG_FORMAT},
            },
        })
    return logs


def _admin() -> dict[str, Any]:
    return {"address": _address(0)}


def _node(pod: str, namespace: str, workload: str) -> dict[str, Any]:
    return {
        "id": f"sidecar~{LOOPBACK}~{pod}.{namespace}~{namespace}.svc.cluster.local",
        "cluster": f"{workload}.{namespace}",
        "metadata": {"NAMESPACE": namespace, "WORKLOAD_NAME": workload, "CLUSTER_ID": "Kubernetes"},
    }


def client_sidecar(
    *,
    pod: str,
    namespace: str,
    workload: str,
    service: Service,
    server_inbound_port: int,
    server_spiffe_id: str,
    cert_pem: str,
    key_pem: str,
    root_pem: str,
    access_log_path: str,
    originate_mtls: bool = True,
    tls_max_version: str | None = None,
    circuit_breaker: CircuitBreaker | None = None,
    outlier_detection: bool = False,
    source_address: str | None = None,
    server_address: str = LOOPBACK,
    route_timeout: str = "0s",
    access_log_format: str = "text",
) -> dict[str, Any]:
    """Build the bootstrap of the caller's sidecar: one outbound HTTP route to `service`.

    `source_address` is the loopback address the sidecar connects from, so
    the server receives connections from the caller's own pod IP. `server_address` is where
    the server listens, and `route_timeout` is a VirtualService timeout
    ("0s", Istio's default, waits forever).
    `originate_mtls` False is what a DestinationRule with `tls.mode: DISABLE`
    makes istiod send: the outbound cluster has no TLS transport socket.
    `tls_max_version` ("TLSv1_2") caps the protocol the client offers.
    `circuit_breaker` sets the cluster's thresholds as a DestinationRule
    connectionPool does, and `outlier_detection` adds Istio's translation of
    `outlierDetection: {consecutive5xxErrors: 1, interval: 1s,
    baseEjectionTime: 30s, maxEjectionPercent: 100}` with panic threshold 0.
    """
    upstream_tls = {
        "name": _TLS_SOCKET,
        "typed_config": {
            "@type": _UPSTREAM_TLS,
            "sni": service.sni,
            "common_tls_context": {
                "alpn_protocols": ["istio-peer-exchange", "istio"],
                "tls_certificate_sds_secret_configs": [{"name": "default"}],
                "combined_validation_context": {
                    "default_validation_context": {
                        "match_typed_subject_alt_names": [
                            {"san_type": "URI", "matcher": {"exact": server_spiffe_id}}],
                    },
                    "validation_context_sds_secret_config": {"name": "ROOTCA"},
                },
            },
        },
    }
    if tls_max_version is not None:
        upstream_tls["typed_config"]["common_tls_context"]["tls_params"] = {
            "tls_maximum_protocol_version": tls_max_version}
    # Istio's default retry policy for an outbound route without a VirtualService.
    retry_policy = {
        "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        "num_retries": 2,
        "retry_host_predicate": [{
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
        }],
        "host_selection_retry_max_attempts": "5",
        "retriable_status_codes": [503],
    }
    virtual_host = {
        "name": f"{service.fqdn}:{service.port}",
        "domains": [
            f"{service.fqdn}", f"{service.fqdn}:{service.port}",
            service.name, f"{service.name}:{service.port}",
            f"{service.name}.{service.namespace}.svc", f"{service.name}.{service.namespace}.svc:{service.port}",
            f"{service.name}.{service.namespace}", f"{service.name}.{service.namespace}:{service.port}",
        ],
        "routes": [{
            "name": "default",
            "match": {"prefix": "/"},
            "route": {
                "cluster": service.outbound_cluster,
                "timeout": route_timeout,
                "retry_policy": retry_policy,
                # istiod sets a VirtualService timeout as both the route timeout and the max stream duration.
                "max_stream_duration": {"max_stream_duration": route_timeout, "grpc_timeout_header_max": route_timeout},
            },
            "decorator": {"operation": f"{service.fqdn}:{service.port}/*"},
        }],
        "include_request_attempt_count": True,
    }
    listener = {
        "name": f"0.0.0.0_{service.port}",
        "address": _address(0),
        "traffic_direction": "OUTBOUND",
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": _HCM,
                    "stat_prefix": f"outbound_0.0.0.0_{service.port}",
                    "route_config": {"name": str(service.port), "virtual_hosts": [virtual_host],
                                     "validate_clusters": False},
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
                    "access_log": _access_log(access_log_path, access_log_format),
                    "use_remote_address": False,
                    "normalize_path": True,
                    "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
                    "request_id_extension": {"typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig",
                        "use_request_id_for_trace_sampling": True}},
                },
            }],
        }],
    }
    return {
        "node": _node(pod, namespace, workload),
        "admin": _admin(),
        "static_resources": {
            "secrets": _secrets(cert_pem, key_pem, root_pem),
            "listeners": [listener],
            "clusters": [_outbound_cluster(service, server_inbound_port, upstream_tls if originate_mtls else None,
                                           circuit_breaker, outlier_detection, source_address,
                                           server_address)],
        },
    }


@dataclass(frozen=True)
class CircuitBreaker:
    """Connection pool limits of a DestinationRule as Envoy cluster thresholds."""

    max_connections: int = 1
    max_pending_requests: int = 1
    max_requests: int = 1


def _outbound_cluster(service: Service, port: int, transport_socket: dict[str, Any] | None,
                      circuit_breaker: CircuitBreaker | None, outlier_detection: bool,
                      source_address: str | None, server_address: str = LOOPBACK) -> dict[str, Any]:
    cluster = _static_cluster(service.outbound_cluster, port, transport_socket, server_address)
    if source_address is not None:
        cluster["upstream_bind_config"] = {"source_address": {"address": source_address, "port_value": 0}}
    if circuit_breaker is not None:
        cluster["circuit_breakers"] = {"thresholds": [{
            "max_connections": circuit_breaker.max_connections,
            "max_pending_requests": circuit_breaker.max_pending_requests,
            "max_requests": circuit_breaker.max_requests,
            "max_retries": 4294967295}]}
    if outlier_detection:
        cluster["outlier_detection"] = {
            "consecutive_5xx": 1, "interval": "1s", "base_ejection_time": "30s",
            "max_ejection_percent": 100, "enforcing_consecutive_5xx": 100,
            "consecutive_gateway_failure": 1, "enforcing_consecutive_gateway_failure": 100}
        # istiod sets the panic threshold to 0 whenever outlier detection is on,
        # so with every host ejected Envoy responds with 503 UH instead of using them anyway.
        cluster["common_lb_config"] = {"healthy_panic_threshold": {"value": 0}}
    return cluster


def jwt_authn_filter(issuer: str, jwks_json: str | None, *, audiences: list[str] | None = None,
                     allow_missing: bool = True, remote_jwks: RemoteJwks | None = None) -> dict[str, Any]:
    """Build `jwt_authn` as istiod translates a RequestAuthentication with an inline JWKS.

    `allow_missing` keeps requests without a token, while a present token that
    fails validation (expired, bad signature, unknown issuer) gets a 401.
    istiod always allows a missing token; `allow_missing=False` is the
    requirement an EnvoyFilter or a plain Envoy sets. `remote_jwks` replaces
    the inline JWKS with a fetch from `remote_jwks.uri` through its cluster.
    """
    provider: dict[str, Any] = {
        "issuer": issuer,
        "payload_in_metadata": "payload",
        "normalize_payload_in_metadata": {"space_delimited_claims": ["scope", "permission"]},
    }
    if remote_jwks is not None:
        provider["remote_jwks"] = {
            "http_uri": {"uri": remote_jwks.uri, "cluster": remote_jwks.cluster, "timeout": "5s"},
            "cache_duration": "300s"}
    else:
        provider["local_jwks"] = {"inline_string": jwks_json}
    if audiences:
        provider["audiences"] = list(audiences)
    requirements: list[dict[str, Any]] = [{"provider_name": JWT_PROVIDER}]
    if allow_missing:
        requirements.append({"allow_missing": {}})
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": _JWT_AUTHN,
            "providers": {JWT_PROVIDER: provider},
            "rules": [{
                "match": {"prefix": "/"},
                "requires": {"requires_any": {"requirements": requirements}}
                if len(requirements) > 1 else requirements[0],
            }],
            "bypass_cors_preflight": True,
        },
    }


@dataclass(frozen=True)
class RemoteJwks:
    """The remote JWKS source of a jwt_authn provider: its URI and the cluster that reaches its host."""

    uri: str
    cluster: str
    port: int

    def cluster_config(self) -> dict[str, Any]:
        return _static_cluster(self.cluster, self.port)


def local_rate_limit_filter(max_tokens: int, enforced_percent: int, fill_interval: str = "60s") -> dict[str, Any]:
    """Build `local_ratelimit` as the EnvoyFilter of Istio's local rate limit task inserts it.

    `enforced_percent` 0 is shadow mode: Envoy counts requests over the limit
    (`rate_limited` stat) and lets them through.
    """
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "http_local_rate_limiter",
            "token_bucket": {"max_tokens": max_tokens, "tokens_per_fill": max_tokens, "fill_interval": fill_interval},
            "filter_enabled": {"runtime_key": "local_rate_limit_enabled",
                               "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "filter_enforced": {"runtime_key": "local_rate_limit_enforced",
                                "default_value": {"numerator": enforced_percent, "denominator": "HUNDRED"}},
            "response_headers_to_add": [{"append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                                         "header": {"key": "x-local-rate-limit", "value": "true"}}],
        },
    }


def rbac_allow_filter(namespace: str, policy: str, principals: list[str], *,
                      paths: list[str] | None = None, methods: list[str] | None = None) -> dict[str, Any]:
    """Build `rbac` as istiod translates an ALLOW AuthorizationPolicy with `from.source.principals`.

    Istio prefixes each principal with `spiffe://`, and names the Envoy policy
    `ns[NAMESPACE]-policy[NAME]-rule[INDEX]`. `paths` and `methods` are the
    rule's `to.operation` fields; without them every request is permitted.
    """
    ids = [{"authenticated": {"principal_name": {"exact": f"spiffe://{principal}"}}} for principal in principals]
    permission_rules: list[dict[str, Any]] = []
    if paths:
        permission_rules.append({"or_rules": {"rules": [
            {"url_path": {"path": {"exact": path}}} for path in paths]}})
    if methods:
        permission_rules.append({"or_rules": {"rules": [
            {"header": {"name": ":method", "string_match": {"exact": method}}} for method in methods]}})
    if not permission_rules:
        permission_rules.append({"any": True})
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": _RBAC,
            "rules": {
                "policies": {
                    f"ns[{namespace}]-policy[{policy}]-rule[0]": {
                        "permissions": [{"and_rules": {"rules": permission_rules}}],
                        "principals": [{"and_ids": {"ids": [{"or_ids": {"ids": ids}}]}}],
                    },
                },
            },
            "shadow_rules_stat_prefix": "istio_dry_run_allow_",
        },
    }


def server_sidecar(
    *,
    pod: str,
    service: Service,
    app_port: int,
    cert_pem: str,
    key_pem: str,
    root_pem: str,
    access_log_path: str,
    http_filters: list[dict[str, Any]],
    require_mtls: bool = True,
    extra_clusters: list[dict[str, Any]] | None = None,
    connection_log_path: str | None = None,
    access_log_format: str = "text",
) -> dict[str, Any]:
    """Build the bootstrap of the server's sidecar: STRICT mTLS inbound, then `http_filters`, then the app.

    `require_mtls` False is PeerAuthentication DISABLE: the inbound filter
    chain has no TLS and takes any bytes as HTTP. The listener logs connections that never
    reach HTTP for lack of a filter chain (flag NR) to the same access log,
    as Istio's listener-level access log does. `connection_log_path` gets a
    JSON line for every connection, with the downstream TLS failure reason.
    """
    downstream_tls = {
        "name": _TLS_SOCKET,
        "typed_config": {
            "@type": _DOWNSTREAM_TLS,
            "require_client_certificate": True,
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificate_sds_secret_configs": [{"name": "default"}],
                "validation_context_sds_secret_config": {"name": "ROOTCA"},
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
            },
        },
    }
    route = {
        "name": "default",
        "match": {"prefix": "/"},
        "route": {
            "cluster": service.inbound_cluster, "timeout": "0s",
            "max_stream_duration": {"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"}},
        "decorator": {"operation": f"{service.fqdn}:{service.port}/*"},
    }
    listener = {
        "name": "virtualInbound",
        "address": _address(0),
        "traffic_direction": "INBOUND",
        "listener_filters": [{
            "name": "envoy.filters.listener.tls_inspector",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"},
        }],
        "filter_chains": [{
            "name": f"0.0.0.0_{service.port}",
            **({"filter_chain_match": {"transport_protocol": "tls"}, "transport_socket": downstream_tls}
               if require_mtls else {}),
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": _HCM,
                    "stat_prefix": f"inbound_0.0.0.0_{service.port}",
                    "route_config": {
                        "name": service.inbound_cluster,
                        "virtual_hosts": [{"name": f"inbound|http|{service.port}", "domains": ["*"], "routes": [route]}],
                        "validate_clusters": False,
                    },
                    "http_filters": [*http_filters, {"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
                    "access_log": _access_log(access_log_path, access_log_format),
                    "forward_client_cert_details": "APPEND_FORWARD",
                    "set_current_client_cert_details": {"subject": True, "dns": True, "uri": True},
                    "use_remote_address": False,
                    "normalize_path": True,
                    "request_id_extension": {"typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig",
                        "use_request_id_for_trace_sampling": True}},
                },
            }],
        }],
        "access_log": _listener_access_logs(access_log_path, connection_log_path, access_log_format),
    }
    return {
        "node": _node(pod, service.namespace, service.name),
        "admin": _admin(),
        # Istio's sidecar bootstrap ends its runtime with an admin layer, so
        # `/runtime_modify` can change a runtime key (such as a filter's
        # enforcement percentage) on a running proxy.
        "layered_runtime": {"layers": [{"name": "static", "static_layer": {}},
                                       {"name": "admin", "admin_layer": {}}]},
        "static_resources": {
            "secrets": _secrets(cert_pem, key_pem, root_pem),
            "listeners": [listener],
            "clusters": [_static_cluster(service.inbound_cluster, app_port), *(extra_clusters or [])],
        },
    }
