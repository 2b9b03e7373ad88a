"""Record the Envoy admin outputs and the packet capture the replay API server answers exec and debug with.

Repeats the sidecar OOM scenario of `record_kubectl.py` with the real Envoy
1.40 (`.venv/bin/envoy`): the frontend's sidecar has an outbound cluster
`outbound|8080||checkout.shop.svc.cluster.local` to 127.0.0.27:8080, three
requests succeed while a small HTTP server listens there, then the server
is stopped and five requests fail with 503 UF. Afterwards the script reads
the admin endpoints `pilot-agent request GET` would return (stats,
clusters, certs, config_dump) and saves them. During the
failing requests, the real tcpdump captures the connection attempts to
127.0.0.27:8080 on the loopback interface (it needs CAP_NET_RAW), bounded
by packet count and seconds, as the text a debug container would log.

Usage: .venv/bin/python tests/data/recorded/record_live.py
Everything binds to 127.0.0.1 or 127.0.0.27; every process is stopped on exit.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import record_envoy

HERE = Path(__file__).resolve().parent
OUT = HERE / "oom-incident-live"
POD_IP = "127.0.0.27"
APP_PORT = 8080
CHECKOUT_CLUSTER = "outbound|8080||checkout.shop.svc.cluster.local"
ADMIN_PATHS = {
    "stats": "admin-stats.txt",
    "clusters": "admin-clusters.txt",
    "certs": "admin-certs.json",
    "config_dump": "admin-config_dump.json",
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="record-live-"))
    ports = {name: record_envoy.free_port() for name in ("admin", "http", "tcp", "tcp-dead", "dead")}
    ports["app"] = APP_PORT

    app = http.server.ThreadingHTTPServer((POD_IP, APP_PORT), record_envoy.QuietHandler)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    config = record_envoy.envoy_config(ports, workdir)
    for cluster in config["static_resources"]["clusters"]:
        for locality in cluster["load_assignment"]["endpoints"]:
            for endpoint in locality["lb_endpoints"]:
                address = endpoint["endpoint"]["address"]["socket_address"]
                if address["port_value"] == APP_PORT:
                    address["address"] = POD_IP
    config_path = workdir / "envoy.json"
    config_path.write_text(json.dumps(config).replace(record_envoy.LIVE_CLUSTER, CHECKOUT_CLUSTER))

    envoy = subprocess.Popen([str(record_envoy.ENVOY), "-c", str(config_path), "--base-id", str(ports["admin"]),
                              "-l", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    capture = None
    try:
        record_envoy.wait_ready(ports["admin"])
        base = f"http://127.0.0.1:{ports['http']}"
        for _ in range(3):
            record_envoy.curl(f"{base}/app/cart", "-H", "user-agent: frontend/2.0")
        app.shutdown()
        app.server_close()

        capture = subprocess.Popen(
            ["timeout", "10", "tcpdump", "-nn", "-l", "-i", "lo", "-c", "20", "-s", "128",
             f"host {POD_IP} and tcp port {APP_PORT}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # tcpdump needs a moment to open the interface
        for _ in range(5):
            record_envoy.curl(f"{base}/app/cart", "-H", "user-agent: frontend/2.0")
            time.sleep(0.2)
        stdout, stderr = capture.communicate(timeout=15)
        # A container log interleaves both streams: tcpdump's banner, the packets, then its summary.
        banner = [line for line in stderr.splitlines(keepends=True) if not line[0].isdigit()][:2]
        summary = [line for line in stderr.splitlines(keepends=True) if line not in banner]
        (OUT / "tcpdump-checkout.txt").write_text("".join(banner) + stdout + "".join(summary))

        for path, name in ADMIN_PATHS.items():
            with urllib.request.urlopen(f"http://127.0.0.1:{ports['admin']}/{path}", timeout=5) as response:
                (OUT / name).write_bytes(response.read())
    finally:
        if capture is not None and capture.poll() is None:
            capture.kill()
        envoy.terminate()
        envoy.wait(timeout=10)


if __name__ == "__main__":
    main()
