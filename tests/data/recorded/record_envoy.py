"""Record real Envoy access-log lines and admin stats for the parser tests.

Runs `.venv/bin/envoy` on 127.0.0.1 with access loggers in Istio's default
TEXT format (the form before Istio 1.24 with %UPSTREAM_CLUSTER% and the one
since with %UPSTREAM_CLUSTER_RAW%), Istio's JSON format and Envoy's own
default format. It sends a few requests with curl: a 200 through a live
upstream, a 404 with no route, a 503 UF against a port nothing listens on, a
503 UH against a cluster without endpoints, and two TCP proxy connections
(one to the live upstream, one to the dead port).
Then it saves the log files and `/stats/prometheus` next to this script.

Usage: .venv/bin/python tests/data/recorded/record_envoy.py
Everything binds to 127.0.0.1 and every process is stopped on exit.
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
ENVOY = Path(sys.prefix) / "bin" / "envoy"

# Istio's default TEXT format before 1.24 (meshConfig accessLogEncoding TEXT).
ISTIO_TEXT_LEGACY = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)
# Since Istio 1.24 the same order, with the cluster's raw name in place of its stat name.
ISTIO_TEXT_124 = ISTIO_TEXT_LEGACY.replace("%UPSTREAM_CLUSTER% ", "%UPSTREAM_CLUSTER_RAW% ")

# Istio's JSON format (meshConfig accessLogEncoding JSON).
ISTIO_JSON = {
    "start_time": "%START_TIME%",
    "route_name": "%ROUTE_NAME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
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
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
}

LIVE_CLUSTER = "outbound|8080||backend.default.svc.cluster.local"
DEAD_CLUSTER = "outbound|9090||dead.default.svc.cluster.local"
EMPTY_CLUSTER = "outbound|7070||empty.default.svc.cluster.local"
INBOUND_CLUSTER = "inbound|8080||"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def access_logs(logdir: Path) -> list[dict]:
    def file_log(name: str, log_format: dict | None) -> dict:
        config = {"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                  "path": str(logdir / name)}
        if log_format is not None:
            config["log_format"] = log_format
        return {"name": "envoy.access_loggers.file", "typed_config": config}

    return [
        file_log("istio-text-legacy.log", {"text_format_source": {"inline_string": ISTIO_TEXT_LEGACY}}),
        file_log("istio-text-1.24.log", {"text_format_source": {"inline_string": ISTIO_TEXT_124}}),
        file_log("istio-json.log", {"json_format": ISTIO_JSON}),
        file_log("envoy-default.log", None),
    ]


def cluster(name: str, port: int | None) -> dict:
    endpoints = []
    if port is not None:
        endpoints = [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": "127.0.0.1", "port_value": port}}}}]}]
    return {
        "name": name,
        # Istio 1.24 and later name cluster stats with a trailing ';'.
        "alt_stat_name": name + ";",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": endpoints},
    }


def envoy_config(ports: dict[str, int], logdir: Path) -> dict:
    route = {
        "name": "default",
        "virtual_hosts": [{
            "name": "backend",
            "domains": ["*"],
            "routes": [
                {"name": "default", "match": {"prefix": "/dead"}, "route": {"cluster": DEAD_CLUSTER, "retry_policy": {
                    "retry_on": "connect-failure", "num_retries": 1}}},
                {"name": "default", "match": {"prefix": "/empty"}, "route": {"cluster": EMPTY_CLUSTER}},
                {"name": "default", "match": {"prefix": "/app"}, "route": {"cluster": LIVE_CLUSTER}},
            ],
        }],
    }
    hcm = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "outbound_0.0.0.0_8080",
            "route_config": route,
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            "access_log": access_logs(logdir),
        },
    }
    def tcp(cluster_name: str) -> dict:
        return {
            "name": "envoy.filters.network.tcp_proxy",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": cluster_name,
                "cluster": cluster_name,
                "access_log": access_logs(logdir),
            },
        }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ports["admin"]}}},
        "static_resources": {
            "listeners": [
                {"name": "http", "address": {"socket_address": {"address": "127.0.0.1", "port_value": ports["http"]}},
                 "filter_chains": [{"filters": [hcm]}]},
                {"name": "tcp", "address": {"socket_address": {"address": "127.0.0.1", "port_value": ports["tcp"]}},
                 "filter_chains": [{"filters": [tcp(INBOUND_CLUSTER)]}]},
                {"name": "tcp-dead", "address": {"socket_address": {"address": "127.0.0.1", "port_value": ports["tcp-dead"]}},
                 "filter_chains": [{"filters": [tcp(DEAD_CLUSTER)]}]},
            ],
            "clusters": [
                cluster(LIVE_CLUSTER, ports["app"]),
                cluster(DEAD_CLUSTER, ports["dead"]),
                cluster(EMPTY_CLUSTER, None),
                cluster(INBOUND_CLUSTER, ports["app"]),
            ],
        },
    }


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b"hello from the upstream\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        return


def curl(url: str, *extra: str) -> None:
    subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "5", *extra, url], check=False, timeout=10)


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


def main() -> None:
    ports = {name: free_port() for name in ("admin", "http", "tcp", "tcp-dead", "app", "dead")}
    app = http.server.ThreadingHTTPServer(("127.0.0.1", ports["app"]), QuietHandler)
    threading.Thread(target=app.serve_forever, daemon=True).start()

    workdir = Path(tempfile.mkdtemp(prefix="record-envoy-"))
    config_path = workdir / "envoy.json"
    config_path.write_text(json.dumps(envoy_config(ports, workdir)))
    envoy = subprocess.Popen(
        [str(ENVOY), "-c", str(config_path), "--base-id", str(ports["admin"]), "-l", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(ports["admin"])
        base = f"http://127.0.0.1:{ports['http']}"
        curl(f"{base}/app/orders", "-H", "user-agent: curl/8.14.1")
        curl(f"{base}/app/orders?id=7", "-X", "POST", "-d", "x=1", "-H", "x-forwarded-for: 10.1.2.3")
        curl(f"{base}/nowhere")
        curl(f"{base}/dead/items")
        curl(f"{base}/empty/items")
        curl(f"http://127.0.0.1:{ports['tcp']}/over-tcp")
        curl(f"http://127.0.0.1:{ports['tcp-dead']}/over-tcp")
        time.sleep(1.5)  # the file access logger flushes every second
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['admin']}/stats/prometheus", timeout=5) as response:
            (HERE / "envoy-stats-prometheus.txt").write_bytes(response.read())
    finally:
        envoy.terminate()
        envoy.wait(timeout=10)
        app.shutdown()

    for name in ("istio-text-legacy.log", "istio-text-1.24.log", "istio-json.log", "envoy-default.log"):
        shutil.copy(workdir / name, HERE / f"envoy-1.40-{name}")
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
