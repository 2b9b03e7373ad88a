"""Generate a realistic Istio sidecar access log in TEXT (since 1.24) or JSON format.

The field order of the TEXT lines and the keys of the JSON objects are those
of Envoy 1.40's output recorded in tests/data/recorded/ (Istio's TEXT format
with `%UPSTREAM_CLUSTER_RAW%`, and Istio's JSON format through Envoy's typed
`json_format`, which writes the keys sorted and compact). Response details and
transport failure reasons are copied from the recorded local replies. Lines
are in time order, about 200 a second by default, mostly 200s with bursts of 503
(UF/URX/UO/UH, TLS failures), 403 RBAC, 401 JWT and 429 RL.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

_CONNECTION_REFUSED = "delayed_connect_error:_Connection_refused"
_TLS_EXPIRED = ("TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:"
                "verify_cert_failed:_X509_verify_cert:_certificate_verification_error_at_depth_0:"
                "_certificate_has_expired:TLS_error_end")
_TLS_UNKNOWN_CA = "TLS_error:|268436504:SSL_routines:OPENSSL_internal:TLSV1_ALERT_UNKNOWN_CA:TLS_error_end"

# (weight, code, flags, details, transport failure reason, upstream host known)
_OUTCOMES = [
    (9000, 200, "-", "via_upstream", None, True),
    (150, 201, "-", "via_upstream", None, True),
    (60, 404, "NR", "route_not_found", None, False),
    (120, 503, "URX,UF", "upstream_reset_before_response_started{remote_connection_failure|"
     + _CONNECTION_REFUSED + "}", _CONNECTION_REFUSED, True),
    (80, 503, "UF", "upstream_reset_before_response_started{remote_connection_failure|"
     + _TLS_EXPIRED + "}", _TLS_EXPIRED, True),
    (30, 503, "UF", "upstream_reset_before_response_started{remote_connection_failure|"
     + _TLS_UNKNOWN_CA + "}", _TLS_UNKNOWN_CA, True),
    (60, 503, "UO", "upstream_reset_before_response_started{overflow}", None, False),
    (50, 503, "UH", "no_healthy_upstream", None, False),
    (40, 503, "UC", "upstream_reset_before_response_started{connection_termination}", None, True),
    (120, 403, "-", "rbac_access_denied_matched_policy[none]", None, False),
    (100, 401, "-", "jwt_authn_access_denied{Jwt_is_expired}", None, False),
    (20, 401, "-", "jwt_authn_access_denied{Jwt_is_missing}", None, False),
    (90, 429, "RL", "local_rate_limited", None, False),
    (30, 504, "UT", "response_timeout", None, True),
    (20, 0, "DC", "downstream_remote_disconnect", None, True),
]
_SERVICES = [
    ("orders", 8080, ["/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/orders/{id}/items"]),
    ("payments", 8443, ["/v2/payments", "/v2/payments/{id}", "/v2/refunds/{id}"]),
    ("catalog", 9080, ["/products", "/products/{id}", "/search"]),
    ("users", 8080, ["/users/{id}", "/users/{id}/profile", "/login"]),
    ("checkout", 8080, ["/cart", "/cart/{id}/checkout"]),
]
_AGENTS = ["curl/8.14.1", "Go-http-client/1.1", "okhttp/4.12.0", "python-requests/2.32.3",
           "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36"]
_CALLERS = [f"10.244.{subnet}.{host}" for subnet in range(1, 4) for host in range(5, 25)]


def generate(path: Path, lines: int, log_format: str, start: datetime, seed: int = 7,
             interval_ms: float = 5.0) -> None:
    """Write `lines` access-log lines in `log_format` ("text" or "json") to `path`.

    Consecutive lines are on average `interval_ms` milliseconds apart.
    """
    low, high = int(interval_ms * 200), int(interval_ms * 1800)
    rng = random.Random(seed)
    weights = [outcome[0] for outcome in _OUTCOMES]
    pods = {name: [f"10.244.{rng.randint(1, 3)}.{rng.randint(30, 250)}" for _ in range(3)]
            for name, _, _ in _SERVICES}
    moment = start
    with path.open("w", encoding="utf-8", newline="\n") as out:
        batch: list[str] = []
        for _ in range(lines):
            moment += timedelta(microseconds=rng.randint(low, high))
            outcome = rng.choices(_OUTCOMES, weights)[0]
            batch.append(_line(rng, moment, outcome, pods, log_format))
            if len(batch) >= 10_000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))


def _line(rng: random.Random, moment: datetime, outcome: tuple, pods: dict, log_format: str) -> str:
    _, code, flags, details, transport, host_known = outcome
    service, port, paths = rng.choice(_SERVICES)
    path = rng.choice(paths).replace("{id}", str(rng.randint(1, 50_000)))
    method = "GET" if rng.random() < 0.7 else "POST"
    pod_ip = rng.choice(pods[service])
    caller = rng.choice(_CALLERS)
    cluster = f"outbound|{port}||{service}.shop.svc.cluster.local"
    values = {
        "start_time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
        "method": method,
        "path": path,
        "protocol": "HTTP/1.1",
        "response_code": code,
        "response_flags": flags,
        "response_code_details": details,
        "connection_termination_details": None,
        "upstream_transport_failure_reason": transport,
        "bytes_received": 0 if method == "GET" else rng.randint(20, 900),
        "bytes_sent": rng.randint(15, 4000) if code < 300 else rng.randint(14, 220),
        "duration": rng.randint(0, 250),
        "upstream_service_time": str(rng.randint(0, 240)) if code < 300 else None,
        "x_forwarded_for": None,
        "user_agent": rng.choice(_AGENTS),
        "request_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "authority": f"{service}:{port}",
        "upstream_host": f"{pod_ip}:{port}" if host_known else None,
        "upstream_cluster": cluster,
        "upstream_local_address": f"{caller}:{rng.randint(32768, 60999)}" if host_known else None,
        "downstream_local_address": f"10.96.{port % 200}.{len(service)}:{port}",
        "downstream_remote_address": f"{caller}:{rng.randint(32768, 60999)}",
        "requested_server_name": None,
        "route_name": "default",
    }
    if log_format == "json":
        return json.dumps(values, sort_keys=True, separators=(",", ":")) + "\n"

    def field(name: str) -> str:
        value = values[name]
        return "-" if value is None else str(value)

    return (f'[{field("start_time")}] "{field("method")} {field("path")} {field("protocol")}" '
            f'{field("response_code")} {field("response_flags")} {field("response_code_details")} '
            f'{field("connection_termination_details")} "{field("upstream_transport_failure_reason")}" '
            f'{field("bytes_received")} {field("bytes_sent")} {field("duration")} '
            f'{field("upstream_service_time")} "{field("x_forwarded_for")}" "{field("user_agent")}" '
            f'"{field("request_id")}" "{field("authority")}" "{field("upstream_host")}" '
            f'{field("upstream_cluster")} {field("upstream_local_address")} '
            f'{field("downstream_local_address")} {field("downstream_remote_address")} '
            f'{field("requested_server_name")} {field("route_name")}\n')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--start", default="2026-12-04T08:00:00+00:00",
                        help="time of the first line (ISO 8601)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--interval-ms", type=float, default=5.0,
                        help="mean time between two lines in milliseconds (default: 5)")
    options = parser.parse_args(argv)
    generate(options.output, options.lines, options.format,
             datetime.fromisoformat(options.start).astimezone(timezone.utc), options.seed,
             options.interval_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
