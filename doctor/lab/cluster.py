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


@dataclass(frozen=True)
class PolicyOptions:
    """Settings of the lab's Istio policies beyond the defaults of a healthy mesh.

    Every field mirrors a setting the lab really gave the sidecars: the mTLS
    mode of the PeerAuthentication, a DestinationRule's `tls.mode`, circuit
    breaker and outlier detection, the AuthorizationPolicy's operation, JWT
    audiences or a `jwksUri`, and the local rate limit EnvoyFilter.
    """

    peer_mode: str = "STRICT"
    destination_rule_tls: str | None = None
    circuit_breaker: bool = False
    outlier_detection: bool = False
    allowed_paths: tuple[str, ...] = ()
    allowed_methods: tuple[str, ...] = ()
    jwt_audiences: tuple[str, ...] = ()
    jwks_uri: str | None = None
    rate_limit_tokens: int | None = None
    rate_limit_enforced: bool = True


def policies_yaml(
    *,
    namespace: str,
    workload: str,
    jwt_issuer: str,
    jwks_json: str,
    allowed_principals: list[str],
    options: PolicyOptions | None = None,
) -> str:
    """Return the PeerAuthentication, RequestAuthentication and AuthorizationPolicy (and, when
    `options` set them, the DestinationRule and EnvoyFilter) as one YAML stream."""
    options = options or PolicyOptions()
    jwt_rule: dict[str, Any] = {"issuer": jwt_issuer}
    if options.jwks_uri:
        jwt_rule["jwksUri"] = options.jwks_uri
    else:
        jwt_rule["jwks"] = jwks_json
    if options.jwt_audiences:
        jwt_rule["audiences"] = list(options.jwt_audiences)
    rule: dict[str, Any] = {"from": [{"source": {"principals": list(allowed_principals)}}]}
    operation: dict[str, Any] = {}
    if options.allowed_paths:
        operation["paths"] = list(options.allowed_paths)
    if options.allowed_methods:
        operation["methods"] = list(options.allowed_methods)
    if operation:
        rule["to"] = [{"operation": operation}]

    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": namespace},
            "spec": {"mtls": {"mode": options.peer_mode}},
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "RequestAuthentication",
            "metadata": {"name": f"{workload}-jwt", "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": workload}},
                "jwtRules": [jwt_rule],
            },
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": workload, "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": workload}},
                "action": "ALLOW",
                "rules": [rule],
            },
        },
    ]
    destination_rule = _destination_rule(namespace, workload, options)
    if destination_rule is not None:
        documents.append(destination_rule)
    if options.rate_limit_tokens is not None:
        documents.append(_local_rate_limit_filter(namespace, workload, options))
    return yaml.safe_dump_all(documents, sort_keys=False, width=1000)


def _destination_rule(namespace: str, workload: str, options: PolicyOptions) -> dict[str, Any] | None:
    policy: dict[str, Any] = {}
    if options.destination_rule_tls is not None:
        policy["tls"] = {"mode": options.destination_rule_tls}
    if options.circuit_breaker:
        policy["connectionPool"] = {
            "tcp": {"maxConnections": 1},
            "http": {"http1MaxPendingRequests": 1, "http2MaxRequests": 1, "maxRequestsPerConnection": 1}}
    if options.outlier_detection:
        policy["outlierDetection"] = {
            "consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "30s", "maxEjectionPercent": 100}
    if not policy:
        return None
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": workload, "namespace": namespace},
        "spec": {"host": f"{workload}.{namespace}.svc.cluster.local", "trafficPolicy": policy},
    }


def _local_rate_limit_filter(namespace: str, workload: str, options: PolicyOptions) -> dict[str, Any]:
    """Return the EnvoyFilter of Istio's local rate limit task, with the lab's bucket."""
    enforced = 100 if options.rate_limit_enforced else 0
    return {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": "filter-local-ratelimit-svc", "namespace": namespace},
        "spec": {
            "workloadSelector": {"labels": {"app": workload}},
            "configPatches": [{
                "applyTo": "HTTP_FILTER",
                "match": {"context": "SIDECAR_INBOUND",
                          "listener": {"filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager"}}}},
                "patch": {
                    "operation": "INSERT_BEFORE",
                    "value": {
                        "name": "envoy.filters.http.local_ratelimit",
                        "typed_config": {
                            "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
                            "type_url": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                            "value": {
                                "stat_prefix": "http_local_rate_limiter",
                                "token_bucket": {"max_tokens": options.rate_limit_tokens,
                                                 "tokens_per_fill": options.rate_limit_tokens,
                                                 "fill_interval": "60s"},
                                "filter_enabled": {"runtime_key": "local_rate_limit_enabled",
                                                   "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
                                "filter_enforced": {"runtime_key": "local_rate_limit_enforced",
                                                    "default_value": {"numerator": enforced, "denominator": "HUNDRED"}},
                            },
                        },
                    },
                },
            }],
        },
    }


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
class ProxyContainerState:
    """The state of a pod's istio-proxy container: `terminated_at` set once it was killed and restarted."""

    restart_count: int = 0
    terminated_at: datetime | None = None
    restarted_at: datetime | None = None
    exit_code: int = 137
    reason: str = "OOMKilled"
    memory_limit: str = "1Gi"


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
    proxy_state: ProxyContainerState = field(default_factory=ProxyContainerState)


def pod_object(spec: PodSpec, node_name: str = "lab-node-1", host_ip: str = "127.0.0.1") -> dict[str, Any]:
    """Return the Pod as the API server returns it, with an injected istio-proxy sidecar."""
    started = _time(spec.started_at)

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
        "resources": {"limits": {"cpu": "2", "memory": spec.proxy_state.memory_limit},
                      "requests": {"cpu": "100m", "memory": "128Mi"}},
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
    _apply_proxy_state(proxy_status, spec)
    unready = [s["name"] for s in (app_status, proxy_status) if not s["ready"]]
    ready = "False" if unready else "True"
    conditions = [
        {"lastProbeTime": None, "lastTransitionTime": started, "status": "True", "type": "PodReadyToStartContainers"},
        {"lastProbeTime": None, "lastTransitionTime": started, "status": "True", "type": "Initialized"},
        _ready_condition("Ready", ready, spec, started, unready),
        _ready_condition("ContainersReady", ready, spec, started, unready),
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


def _apply_proxy_state(status: dict[str, Any], spec: PodSpec) -> None:
    """Record a killed istio-proxy as the kubelet does: lastState terminated, then running again or waiting."""
    state = spec.proxy_state
    if state.terminated_at is None:
        return
    status["restartCount"] = state.restart_count
    status["lastState"] = {"terminated": {
        "containerID": f"containerd://{_container_id(spec.name, 'istio-proxy-previous')}",
        "exitCode": state.exit_code, "finishedAt": _time(state.terminated_at), "reason": state.reason,
        "startedAt": _time(spec.started_at)}}
    if state.restarted_at is not None:
        status["state"] = {"running": {"startedAt": _time(state.restarted_at)}}
        return
    status["ready"] = False
    status["started"] = False
    status["state"] = {"waiting": {
        "message": f"back-off 10s restarting failed container=istio-proxy pod={spec.name}_{spec.namespace}"
                   f"({_uuid(spec.name, 'pod')})",
        "reason": "CrashLoopBackOff"}}


def _ready_condition(kind: str, status: str, spec: PodSpec, started: str,
                     unready: list[str] | None = None) -> dict[str, Any]:
    condition: dict[str, Any] = {"lastProbeTime": None, "status": status, "type": kind}
    stopped_at = spec.app_state.terminated_at or spec.proxy_state.terminated_at
    if status == "False" and stopped_at is not None:
        condition["lastTransitionTime"] = _time(stopped_at)
        condition["message"] = f"containers with unready status: [{' '.join(unready or [spec.app])}]"
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
