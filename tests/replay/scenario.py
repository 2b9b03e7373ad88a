"""The recorded sidecar OOM incident as a `ReplayCluster`.

Pods and events are the real kubectl outputs in tests/data/recorded/oom-incident.
Checkout's istio-proxy runs as a native sidecar with a 64Mi limit and was
OOMKilled, and frontend calls checkout. The frontend sidecar's log is that
run's real Envoy access log with the 503 UF burst. The outputs of `pilot-agent
request GET stats|clusters|certs|config_dump` in frontend's istio-proxy, and the
packet capture a debug container leaves in its log, are real Envoy and
tcpdump outputs of the same scenario in tests/data/recorded/oom-incident-live.

The services, endpoints, namespaces, nodes and the mesh-wide PERMISSIVE
PeerAuthentication were not recorded: they are written here to match the
pods (checkout's only endpoint is not ready, the shop namespace has
injection enabled, both nodes report Ready with heartbeats near the kill).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from tests.replay.server import ReplayCluster

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded"
INCIDENT = RECORDED / "oom-incident"
LIVE = RECORDED / "oom-incident-live"

NAMESPACE = "shop"
CHECKOUT_POD = "checkout-7c9d8b6f5-x2x7k"
FRONTEND_POD = "frontend-6d4b9c8f7-q8w2z"
CAPTURE_IMAGE = "docker.io/nicolaka/netshoot:v0.13"
ADMIN_OUTPUTS = {
    "stats": "admin-stats.txt",
    "clusters": "admin-clusters.txt",
    "certs": "admin-certs.json",
    "config_dump": "admin-config_dump.json",
}


def oom_incident() -> ReplayCluster:
    """Build the replay cluster of the checkout sidecar OOM kill."""
    cluster = ReplayCluster()
    pods = json.loads((INCIDENT / "kubectl-get-pods-shop.json").read_text())["items"]
    events = yaml.safe_load((INCIDENT / "kubectl-get-events-shop.yaml").read_text())["items"]
    for obj in pods + events:
        cluster.add(obj)
    killed = _kill_time(pods)

    for obj in _namespaces() + _services() + _endpoints() + _nodes(killed) + _istio_policies():
        cluster.add(obj)

    cluster.logs[(NAMESPACE, FRONTEND_POD, "istio-proxy")] = (
        INCIDENT / "frontend-istio-proxy-access.log").read_text()
    for path, name in ADMIN_OUTPUTS.items():
        output = (LIVE / name).read_text()
        cluster.exec[(NAMESPACE, FRONTEND_POD, "istio-proxy", "pilot-agent", "request", "GET", path)] = (output, 0)
    cluster.ephemeral_logs[CAPTURE_IMAGE] = (LIVE / "tcpdump-checkout.txt").read_text()
    return cluster


def _kill_time(pods: list[dict[str, Any]]) -> datetime:
    for pod in pods:
        for status in pod["status"].get("initContainerStatuses", []):
            finished = status.get("lastState", {}).get("terminated", {}).get("finishedAt")
            if finished:
                return datetime.fromisoformat(finished.replace("Z", "+00:00"))
    return datetime.now(timezone.utc)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _namespaces() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": NAMESPACE, "labels": {"istio-injection": "enabled",
                                                    "kubernetes.io/metadata.name": NAMESPACE}},
         "status": {"phase": "Active"}},
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "istio-system", "labels": {"kubernetes.io/metadata.name": "istio-system"}},
         "status": {"phase": "Active"}},
    ]


def _services() -> list[dict[str, Any]]:
    def service(name: str, cluster_ip: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
                "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "selector": {"app": name},
                         "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 8080}]}}

    return [service("checkout", "10.96.14.20"), service("frontend", "10.96.14.21")]


def _endpoints() -> list[dict[str, Any]]:
    def endpoints(name: str, pod: str, ip: str, ready: bool) -> dict[str, Any]:
        address = {"ip": ip, "nodeName": "worker-2" if name == "checkout" else "worker-1",
                   "targetRef": {"kind": "Pod", "name": pod, "namespace": NAMESPACE}}
        subset = {"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                  ("addresses" if ready else "notReadyAddresses"): [address]}
        return {"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
                "subsets": [subset]}

    return [endpoints("checkout", CHECKOUT_POD, "127.0.0.27", ready=False),
            endpoints("frontend", FRONTEND_POD, "127.0.0.31", ready=True)]


def _nodes(killed: datetime) -> list[dict[str, Any]]:
    def node(name: str, address: str, heartbeat: datetime) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": address}],
                    "conditions": [
                        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                         "lastHeartbeatTime": _rfc3339(heartbeat), "lastTransitionTime": _rfc3339(heartbeat - timedelta(days=3))},
                        {"type": "Ready", "status": "True", "reason": "KubeletReady",
                         "message": "kubelet is posting ready status",
                         "lastHeartbeatTime": _rfc3339(heartbeat), "lastTransitionTime": _rfc3339(heartbeat - timedelta(days=3))},
                    ],
                    "nodeInfo": {"kubeletVersion": "v1.32.4", "containerRuntimeVersion": "containerd://1.7.24"}}}

    return [node("worker-1", "127.0.0.3", killed + timedelta(seconds=8)),
            node("worker-2", "127.0.0.2", killed + timedelta(seconds=6))]


def _istio_policies() -> list[dict[str, Any]]:
    # PERMISSIVE, because the recorded Envoy's outbound clusters carry no TLS transport socket.
    return [{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
             "metadata": {"name": "default", "namespace": "istio-system"},
             "spec": {"mtls": {"mode": "PERMISSIVE"}}}]
