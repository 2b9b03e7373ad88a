"""Record real kubectl and Envoy outputs of a sidecar OOM kill, for parser and rule tests.

Serves a recorded cluster state from a small Kubernetes API replay server on
127.0.0.1 (discovery, pods, events and metrics.k8s.io pod metrics) and runs
the real `kubectl` against it, so the files hold kubectl's own JSON, YAML and
table printing. The cluster state is a scenario written here: pod `checkout`
in namespace `shop` whose istio-proxy runs as a native sidecar (an init
container with restartPolicy Always, as Istio 1.28 injects it) with a 64Mi
memory limit and was OOMKilled; pod `frontend` with a classic istio-proxy
container. The pod IP of `checkout` is the loopback address 127.0.0.27.
The kubelet's cAdvisor metrics (fetched with `kubectl get --raw`) show the
checkout istio-proxy throttled in half of its CFS periods.

The same script runs `.venv/bin/envoy` with Istio's TEXT access-log format
and an outbound cluster to 127.0.0.27:8080: requests succeed while a small
HTTP server listens there, then the server is stopped, the time is noted as
the sidecar's termination time, and the next requests fail with 503 UF.

Usage: .venv/bin/python tests/data/recorded/record_kubectl.py
Everything binds to 127.0.0.1 or 127.0.0.27; every process is stopped on exit.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import record_envoy

HERE = Path(__file__).resolve().parent
OUT = HERE / "oom-incident"
POD_IP = "127.0.0.27"
APP_PORT = 8080


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def proxy_container(limit: str, native: bool) -> dict:
    container = {
        "name": "istio-proxy",
        "image": "docker.io/istio/proxyv2:1.28.0",
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "resources": {"limits": {"cpu": "200m", "memory": limit},
                      "requests": {"cpu": "100m", "memory": limit}},
    }
    if native:
        container["restartPolicy"] = "Always"
    return container


def checkout_pod(started: datetime, killed: datetime) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "checkout-7c9d8b6f5-x2x7k",
            "namespace": "shop",
            "uid": "5b0f7d7e-3c1e-4a55-9d0e-2f5d0c1f9a11",
            "resourceVersion": "48213",
            "creationTimestamp": rfc3339(started - timedelta(hours=2)),
            "labels": {"app": "checkout", "security.istio.io/tlsMode": "istio",
                       "service.istio.io/canonical-name": "checkout"},
            "annotations": {"sidecar.istio.io/status": '{"initContainers":["istio-init","istio-proxy"],'
                                                       '"containers":null}'},
        },
        "spec": {
            "nodeName": "worker-2",
            "serviceAccountName": "checkout",
            "initContainers": [
                {"name": "istio-init", "image": "docker.io/istio/proxyv2:1.28.0",
                 "args": ["istio-iptables", "-p", "15001", "-z", "15006"],
                 "resources": {"limits": {"cpu": "2", "memory": "1Gi"},
                               "requests": {"cpu": "10m", "memory": "40Mi"}}},
                proxy_container("64Mi", native=True),
            ],
            "containers": [
                {"name": "checkout", "image": "registry.example.com/checkout:4.2.1",
                 "ports": [{"containerPort": APP_PORT, "protocol": "TCP"}],
                 "resources": {"limits": {"memory": "512Mi"}, "requests": {"cpu": "250m", "memory": "256Mi"}}},
            ],
        },
        "status": {
            "phase": "Running",
            "hostIP": "127.0.0.2",
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "startTime": rfc3339(started - timedelta(hours=2)),
            "initContainerStatuses": [
                {"name": "istio-init", "image": "docker.io/istio/proxyv2:1.28.0", "ready": True,
                 "restartCount": 0, "started": False,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                          "startedAt": rfc3339(started - timedelta(hours=2)),
                                          "finishedAt": rfc3339(started - timedelta(hours=2))}}},
                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.28.0", "ready": False,
                 "restartCount": 4, "started": False,
                 "state": {"waiting": {"reason": "CrashLoopBackOff",
                                       "message": "back-off 40s restarting failed container=istio-proxy"}},
                 "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                              "startedAt": rfc3339(started),
                                              "finishedAt": rfc3339(killed)}}},
            ],
            "containerStatuses": [
                {"name": "checkout", "image": "registry.example.com/checkout:4.2.1", "ready": False,
                 "restartCount": 0, "started": True,
                 "state": {"running": {"startedAt": rfc3339(started - timedelta(hours=2))}}},
            ],
        },
    }


def frontend_pod(started: datetime) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "frontend-6d4b9c8f7-q8w2z", "namespace": "shop",
                     "creationTimestamp": rfc3339(started - timedelta(days=1)),
                     "labels": {"app": "frontend"}},
        "spec": {
            "nodeName": "worker-1",
            "serviceAccountName": "frontend",
            "containers": [
                {"name": "frontend", "image": "registry.example.com/frontend:2.0.0",
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
                proxy_container("1Gi", native=False),
            ],
        },
        "status": {
            "phase": "Running",
            "hostIP": "127.0.0.3",
            "podIP": "127.0.0.31",
            "podIPs": [{"ip": "127.0.0.31"}],
            "containerStatuses": [
                {"name": "frontend", "ready": True, "restartCount": 0, "started": True,
                 "image": "registry.example.com/frontend:2.0.0",
                 "state": {"running": {"startedAt": rfc3339(started - timedelta(days=1))}}},
                {"name": "istio-proxy", "ready": True, "restartCount": 0, "started": True,
                 "image": "docker.io/istio/proxyv2:1.28.0",
                 "state": {"running": {"startedAt": rfc3339(started - timedelta(days=1))}}},
            ],
        },
    }


def event(name: str, reason: str, kind: str, message: str, first: datetime, last: datetime,
          count: int, involved: str, field_path: str | None = None) -> dict:
    involved_object = {"kind": "Pod", "namespace": "shop", "name": involved, "apiVersion": "v1"}
    if field_path:
        involved_object["fieldPath"] = field_path
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": rfc3339(first)},
        "involvedObject": involved_object,
        "reason": reason,
        "message": message,
        "source": {"component": "kubelet", "host": "worker-2"},
        "firstTimestamp": rfc3339(first),
        "lastTimestamp": rfc3339(last),
        "count": count,
        "type": kind,
        "reportingComponent": "kubelet",
        "reportingInstance": "worker-2",
    }


def events(started: datetime, killed: datetime) -> list[dict]:
    pod = "checkout-7c9d8b6f5-x2x7k"
    return [
        event(f"{pod}.1801a", "Pulled", "Normal",
              'Container image "docker.io/istio/proxyv2:1.28.0" already present on machine',
              started, started, 5, pod, "spec.initContainers{istio-proxy}"),
        event(f"{pod}.1801b", "BackOff", "Warning", "Back-off restarting failed container istio-proxy in pod "
              f"{pod}_shop(5b0f7d7e-3c1e-4a55-9d0e-2f5d0c1f9a11)",
              killed, killed + timedelta(seconds=5), 3, pod, "spec.initContainers{istio-proxy}"),
        event(f"{pod}.1801c", "Unhealthy", "Warning",
              "Readiness probe failed: Get \"http://127.0.0.27:15021/healthz/ready\": dial tcp "
              "127.0.0.27:15021: connect: connection refused",
              killed, killed + timedelta(seconds=4), 4, pod, "spec.initContainers{istio-proxy}"),
    ]


def pod_metrics(now: datetime) -> dict:
    def item(name: str, containers: list[tuple[str, str, str]]) -> dict:
        return {"metadata": {"name": name, "namespace": "shop", "creationTimestamp": rfc3339(now)},
                "timestamp": rfc3339(now), "window": "15.03s",
                "containers": [{"name": container, "usage": {"cpu": cpu, "memory": memory}}
                               for container, cpu, memory in containers]}

    return {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {},
            "items": [item("checkout-7c9d8b6f5-x2x7k", [("checkout", "31m", "201732Ki"),
                                                       ("istio-proxy", "187m", "63488Ki")]),
                      item("frontend-6d4b9c8f7-q8w2z", [("frontend", "4m", "60312Ki"),
                                                       ("istio-proxy", "6m", "48220Ki")])]}


def cadvisor_metrics(now: datetime) -> str:
    """The kubelet's cAdvisor metrics for worker-2, in Prometheus text exposition."""
    stamp = int(now.timestamp() * 1000)
    series = {
        "checkout-7c9d8b6f5-x2x7k": {
            "istio-proxy": (18234, 9120, 734.212, 66584576),
            "checkout": (18230, 12, 0.381, 206569472),
        },
        "frontend-6d4b9c8f7-q8w2z": {
            "istio-proxy": (90412, 95, 1.907, 49283072),
        },
    }
    metrics = [
        ("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", "counter", 0),
        ("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", "counter", 1),
        ("container_cpu_cfs_throttled_seconds_total",
         "Total time duration the container has been throttled.", "counter", 2),
        ("container_memory_working_set_bytes", "Current working set in bytes.", "gauge", 3),
    ]
    lines = []
    for name, help_text, metric_type, field in metrics:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {metric_type}")
        for pod, containers in series.items():
            for container, values in containers.items():
                cgroup = f"/kubepods/burstable/pod{pod[-5:]}/{container}"
                image = ("docker.io/istio/proxyv2:1.28.0" if container == "istio-proxy"
                         else f"registry.example.com/{container}:4.2.1")
                labels = (f'container="{container}",id="{cgroup}",image="{image}",'
                          f'name="{container}-{pod[-5:]}",namespace="shop",pod="{pod}"')
                lines.append(f"{name}{{{labels}}} {values[field]} {stamp}")
    return "\n".join(lines) + "\n"


class ReplayState:
    def __init__(self) -> None:
        self.routes: dict[str, dict | str] = {}
        self.requests: list[str] = []


def replay_handler(state: ReplayState) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            state.requests.append(f"GET {self.path}")
            body = state.routes.get(path)
            if isinstance(body, str):
                payload = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if body is None:
                payload = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "reason": "NotFound", "code": 404}).encode()
                self.send_response(404)
            else:
                payload = json.dumps(body).encode()
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            return

    return Handler


def discovery_routes() -> dict[str, dict]:
    def resource(name: str, kind: str, namespaced: bool = True) -> dict:
        return {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
                "verbs": ["get", "list"]}

    return {
        "/api": {"kind": "APIVersions", "versions": ["v1"],
                 "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]},
        "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "metrics.k8s.io", "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
             "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}}]},
        "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            resource("pods", "Pod"), resource("events", "Event")]},
        "/apis/metrics.k8s.io/v1beta1": {"kind": "APIResourceList", "apiVersion": "v1",
                                         "groupVersion": "metrics.k8s.io/v1beta1",
                                         "resources": [resource("pods", "PodMetrics")]},
        "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.4"},
    }


def run_kubectl(kubeconfig: Path, *args: str) -> str:
    completed = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args],
                               capture_output=True, text=True, timeout=30, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {completed.stderr}")
    return completed.stdout


def record_access_log(workdir: Path) -> tuple[datetime, datetime]:
    """Run Envoy in front of POD_IP:APP_PORT, stop the app midway, return (start, kill) times."""
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
    # The callers' sidecar names the cluster after the checkout service.
    text = json.dumps(config).replace(record_envoy.LIVE_CLUSTER, "outbound|8080||checkout.shop.svc.cluster.local")
    config_path.write_text(text)
    envoy = subprocess.Popen([str(record_envoy.ENVOY), "-c", str(config_path), "--base-id",
                              str(ports["admin"]), "-l", "warning"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        record_envoy.wait_ready(ports["admin"])
        base = f"http://127.0.0.1:{ports['http']}"
        started = datetime.now(timezone.utc)
        for _ in range(3):
            record_envoy.curl(f"{base}/app/cart", "-H", "user-agent: frontend/2.0")
        time.sleep(1.0)
        app.shutdown()
        app.server_close()
        killed = datetime.now(timezone.utc)
        time.sleep(1.0)
        for _ in range(5):
            record_envoy.curl(f"{base}/app/cart", "-H", "user-agent: frontend/2.0")
            time.sleep(0.2)
        time.sleep(1.5)  # the file access logger flushes every second
    finally:
        envoy.terminate()
        envoy.wait(timeout=10)
    return started, killed


def main() -> None:
    OUT.mkdir(exist_ok=True)
    (HERE / "oom-incident-healthy").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="record-kubectl-"))

    started, killed = record_access_log(workdir)
    (OUT / "frontend-istio-proxy-access.log").write_text((workdir / "istio-text-1.24.log").read_text())

    state = ReplayState()
    state.routes.update(discovery_routes())
    pods = [checkout_pod(started, killed), frontend_pod(started)]
    state.routes["/api/v1/namespaces/shop/pods"] = {"kind": "PodList", "apiVersion": "v1",
                                                    "metadata": {"resourceVersion": "48213"}, "items": pods}
    state.routes["/api/v1/namespaces/shop/pods/checkout-7c9d8b6f5-x2x7k"] = pods[0]
    state.routes["/api/v1/namespaces/shop/pods/frontend-6d4b9c8f7-q8w2z"] = pods[1]
    state.routes["/api/v1/namespaces/shop/events"] = {"kind": "EventList", "apiVersion": "v1",
                                                      "metadata": {"resourceVersion": "48213"},
                                                      "items": events(started, killed)}
    state.routes["/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods"] = pod_metrics(datetime.now(timezone.utc))
    state.routes["/api/v1/nodes/worker-2/proxy/metrics/cadvisor"] = cadvisor_metrics(datetime.now(timezone.utc))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), replay_handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "replay",
        "clusters": [{"name": "replay", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "contexts": [{"name": "replay", "context": {"cluster": "replay", "namespace": "shop", "user": "replay"}}],
        "users": [{"name": "replay", "user": {}}],
    }))
    try:
        outputs = {
            "kubectl-get-pods-shop.yaml": ["get", "pods", "-o", "yaml"],
            "kubectl-get-pods-shop.json": ["get", "pods", "-o", "json"],
            "kubectl-get-pod-checkout.json": ["get", "pod", "checkout-7c9d8b6f5-x2x7k", "-o", "json"],
            "../oom-incident-healthy/kubectl-get-pod-frontend.yaml": ["get", "pod", "frontend-6d4b9c8f7-q8w2z", "-o", "yaml"],
            "kubectl-get-events-shop.yaml": ["get", "events", "-o", "yaml"],
            "kubectl-events-shop.txt": ["events"],
            "kubectl-top-pod-containers.txt": ["top", "pod", "--containers"],
            "kubelet-cadvisor-worker-2.txt": ["get", "--raw", "/api/v1/nodes/worker-2/proxy/metrics/cadvisor"],
        }
        for name, args in outputs.items():
            (OUT / name).write_text(run_kubectl(kubeconfig, *args))
    finally:
        server.shutdown()
    (OUT / "requests.log").write_text("\n".join(state.requests) + "\n")


if __name__ == "__main__":
    main()
