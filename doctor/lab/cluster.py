"""The Kubernetes side of the mesh lab: the Istio policies behind the sidecars'
config, and the pods as `kubectl get pods -o json` prints them.

The lab has no API server, so these documents are built here, field for
field in the shapes of the Kubernetes and Istio APIs. Their values come from
what the lab really ran. Pod IPs and container ports are the loopback
address and ports the processes listen on, and times are the times the lab
started and stopped them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

ISTIO_PROXY_IMAGE = "docker.io/istio/proxyv2:1.26.2"
ISTIO_REVISION_STATUS = {
    "initContainers": ["istio-init"],
    "containers": ["istio-proxy"],
    "volumes": ["workload-socket", "credential-socket", "workload-certs", "istio-envoy", "istio-data",
                "istio-podinfo", "istio-token", "istiod-ca-cert"],
    "imagePullSecrets": None,
    "revision": "default",
}


def policies_yaml(
    *,
    namespace: str,
    workload: str,
    jwt_issuer: str,
    jwks_json: str,
    allowed_principals: list[str],
) -> str:
    """Return the PeerAuthentication, RequestAuthentication and AuthorizationPolicy as one YAML stream."""
    documents = [
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": namespace},
            "spec": {"mtls": {"mode": "STRICT"}},
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "RequestAuthentication",
            "metadata": {"name": f"{workload}-jwt", "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": workload}},
                "jwtRules": [{"issuer": jwt_issuer, "jwks": jwks_json}],
            },
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": workload, "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": workload}},
                "action": "ALLOW",
                "rules": [{"from": [{"source": {"principals": list(allowed_principals)}}]}],
            },
        },
    ]
    return yaml.safe_dump_all(documents, sort_keys=False, width=1000)


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class AppContainerState:
    """The state of a pod's application container, as its status reports it."""

    ready: bool = True
    restart_count: int = 0
    terminated_at: datetime | None = None  # when the app stopped, if it did
    exit_code: int = 1
    reason: str = "Error"


@dataclass
class PodSpec:
    """The facts about one workload's pod that its Pod object is built from."""

    name: str
    namespace: str
    app: str
    service_account: str
    pod_ip: str
    app_image: str
    app_port: int | None
    started_at: datetime
    pod_template_hash: str
    app_state: AppContainerState = field(default_factory=AppContainerState)
    app_command: list[str] | None = None


def pod_object(spec: PodSpec, node_name: str = "lab-node-1", host_ip: str = "127.0.0.1") -> dict[str, Any]:
    """Return the Pod as the API server returns it, with an injected istio-proxy sidecar."""
    started = _time(spec.started_at)
    app_state = spec.app_state

    app_container: dict[str, Any] = {
        "name": spec.app,
        "image": spec.app_image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [{
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "name": f"kube-api-access-{spec.pod_template_hash[:5]}",
            "readOnly": True,
        }],
    }
    if spec.app_command:
        app_container["command"] = spec.app_command
    if spec.app_port is not None:
        app_container["ports"] = [{"containerPort": spec.app_port, "name": "http", "protocol": "TCP"}]

    proxy_container = {
        "name": "istio-proxy",
        "image": ISTIO_PROXY_IMAGE,
        "args": ["proxy", "sidecar", "--domain", f"{spec.namespace}.svc.cluster.local",
                 "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"],
        "env": [
            {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
            {"name": "CA_ADDR", "value": "istiod.istio-system.svc:15012"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
            {"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
            {"name": "SERVICE_ACCOUNT", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.serviceAccountName"}}},
            {"name": "ISTIO_META_WORKLOAD_NAME", "value": spec.app},
        ],
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {
            "failureThreshold": 4, "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
            "periodSeconds": 15, "successThreshold": 1, "timeoutSeconds": 3},
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "privileged": False,
            "readOnlyRootFilesystem": True, "runAsGroup": 1337, "runAsNonRoot": True, "runAsUser": 1337},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            {"mountPath": "/var/run/secrets/workload-spiffe-uds", "name": "workload-socket"},
            {"mountPath": "/var/run/secrets/istio", "name": "istiod-ca-cert"},
            {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"},
            {"mountPath": "/var/run/secrets/tokens", "name": "istio-token"},
        ],
    }

    app_status = _app_container_status(spec, started)
    proxy_status = {
        "containerID": f"containerd://{_container_id(spec.name, 'istio-proxy')}",
        "image": ISTIO_PROXY_IMAGE,
        "imageID": "docker.io/istio/proxyv2@sha256:" + _container_id(ISTIO_PROXY_IMAGE, "image"),
        "lastState": {},
        "name": "istio-proxy",
        "ready": True,
        "restartCount": 0,
        "started": True,
        "state": {"running": {"startedAt": started}},
    }
    ready = "True" if app_state.ready else "False"
    conditions = [
        {"lastProbeTime": None, "lastTransitionTime": started, "status": "True", "type": "PodReadyToStartContainers"},
        {"lastProbeTime": None, "lastTransitionTime": started, "status": "True", "type": "Initialized"},
        _ready_condition("Ready", ready, spec, started),
        _ready_condition("ContainersReady", ready, spec, started),
        {"lastProbeTime": None, "lastTransitionTime": started, "status": "True", "type": "PodScheduled"},
    ]

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": {
                "istio.io/rev": "default",
                "kubectl.kubernetes.io/default-container": spec.app,
                "kubectl.kubernetes.io/default-logs-container": spec.app,
                "prometheus.io/path": "/stats/prometheus",
                "prometheus.io/port": "15020",
                "prometheus.io/scrape": "true",
                "sidecar.istio.io/status": json.dumps(ISTIO_REVISION_STATUS, separators=(",", ":")),
            },
            "creationTimestamp": started,
            "generateName": f"{spec.app}-{spec.pod_template_hash}-",
            "labels": {
                "app": spec.app,
                "pod-template-hash": spec.pod_template_hash,
                "security.istio.io/tlsMode": "istio",
                "service.istio.io/canonical-name": spec.app,
                "service.istio.io/canonical-revision": "latest",
            },
            "name": spec.name,
            "namespace": spec.namespace,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True,
                "kind": "ReplicaSet", "name": f"{spec.app}-{spec.pod_template_hash}",
                "uid": _uuid(spec.name, "replicaset")}],
            "resourceVersion": str(4000 + sum(map(ord, spec.name))),
            "uid": _uuid(spec.name, "pod"),
        },
        "spec": {
            "containers": [app_container, proxy_container],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": True,
            "nodeName": node_name,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccount": spec.service_account,
            "serviceAccountName": spec.service_account,
            "terminationGracePeriodSeconds": 30,
        },
        "status": {
            "conditions": conditions,
            "containerStatuses": [app_status, proxy_status],
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "phase": "Running",
            "podIP": spec.pod_ip,
            "podIPs": [{"ip": spec.pod_ip}],
            "qosClass": "Burstable",
            "startTime": started,
        },
    }


def _ready_condition(kind: str, status: str, spec: PodSpec, started: str) -> dict[str, Any]:
    condition: dict[str, Any] = {"lastProbeTime": None, "status": status, "type": kind}
    if status == "False" and spec.app_state.terminated_at is not None:
        condition["lastTransitionTime"] = _time(spec.app_state.terminated_at)
        condition["message"] = f"containers with unready status: [{spec.app}]"
        condition["reason"] = "ContainersNotReady"
    else:
        condition["lastTransitionTime"] = started
    return condition


def _app_container_status(spec: PodSpec, started: str) -> dict[str, Any]:
    state = spec.app_state
    status: dict[str, Any] = {
        "containerID": f"containerd://{_container_id(spec.name, spec.app)}",
        "image": spec.app_image,
        "imageID": spec.app_image.split(":")[0] + "@sha256:" + _container_id(spec.app_image, "image"),
        "lastState": {},
        "name": spec.app,
        "ready": state.ready,
        "restartCount": state.restart_count,
        "started": state.ready,
        "state": {"running": {"startedAt": started}},
    }
    if state.terminated_at is not None:
        finished = _time(state.terminated_at)
        status["lastState"] = {"terminated": {
            "containerID": f"containerd://{_container_id(spec.name, spec.app + '-previous')}",
            "exitCode": state.exit_code, "finishedAt": finished, "reason": state.reason, "startedAt": started}}
        status["state"] = {"waiting": {
            "message": f"back-off 10s restarting failed container={spec.app} pod={spec.name}_{spec.namespace}"
                       f"({_uuid(spec.name, 'pod')})",
            "reason": "CrashLoopBackOff"}}
    return status


def pod_list(pods: list[dict[str, Any]]) -> str:
    """Return `pods` as `kubectl get pods -o json` prints a list: a v1 List, four-space indent."""
    document = {"apiVersion": "v1", "items": pods, "kind": "List", "metadata": {"resourceVersion": ""}}
    return json.dumps(document, indent=4) + "\n"


def _container_id(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def _uuid(*parts: str) -> str:
    digest = _container_id(*parts)
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
