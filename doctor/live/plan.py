"""Scope a live collection: which probes run, in which namespaces, on which pods.

The symptom (`--symptom 503`) names a node of the rule graph; its candidate
causes are every cause reachable from it. A probe runs when it serves every
symptom or gathers evidence for the symptom or one of those causes, so a
503 scan reads Endpoints and DestinationRules but not RequestAuthentications.
Pod probes run on the pods of `--from WORKLOAD` and `--to SERVICE`, where the
service's selector picks the pods. Without either, they run on the
sidecar-injected pods of the namespaces, up to `max_pods`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import networkx as nx

from doctor.live.context import LiveOptions
from doctor.live.kubeapi import ISTIO_ROOT_NAMESPACE
from doctor.live.registry import ProbeRegistry, ProbeSpec, Target
from doctor.model import Observation, ProbeStatus
from doctor.rules import Rulebook

logger = logging.getLogger(__name__)

PROXY_CONTAINER = "istio-proxy"
# Short names an engineer types for the symptom ids of the rule files.
SYMPTOM_ALIASES = {
    "503": "http-503", "403": "http-403", "401": "http-401", "429": "http-429",
    "tls": "tls-handshake-failure", "handshake": "tls-handshake-failure",
    "137": "container-exit-137", "oom": "container-exit-137", "oomkilled": "container-exit-137",
    "latency": "tail-latency", "slow": "tail-latency", "timeout": "request-timeout", "504": "request-timeout",
    "sync": "proxy-config-not-synced", "stale": "proxy-config-not-synced",
}


class ScopeError(ValueError):
    """Raised for a symptom or scope the planner cannot use; the message lists the valid choices."""


@dataclass(frozen=True)
class Task:
    """One probe run on one target."""

    spec: ProbeSpec
    target: Target


@dataclass(frozen=True)
class PodInfo:
    """The facts about one pod that the planner reads from the pods listing."""

    namespace: str
    name: str
    labels: dict[str, str]
    has_sidecar: bool
    proxy_restarts: int
    app_container: str
    app_port: int = 0
    proxy_state: str = ""


@dataclass
class Plan:
    """The probes chosen for a symptom, and the reasons other probes or pods were left out."""

    symptom: str | None
    relevant_ids: frozenset[str] | None
    specs: list[ProbeSpec]
    namespaces: list[str]
    notes: list[str] = field(default_factory=list)

    def specs_of_scope(self, *scopes: str) -> list[ProbeSpec]:
        return [spec for spec in self.specs if spec.scope in scopes]


def resolve_symptom(symptom: str, rulebook: Rulebook) -> str:
    """Return the symptom id for an id or a short name such as 503. Raises ScopeError for an unknown one."""
    key = symptom.strip().lower()
    symptom_id = key if key in rulebook.symptoms else SYMPTOM_ALIASES.get(key, key)
    if symptom_id not in rulebook.symptoms:
        known = ", ".join(sorted(set(SYMPTOM_ALIASES) | set(rulebook.symptoms)))
        raise ScopeError(f"unknown symptom {symptom!r}; use one of: {known}")
    return symptom_id


def candidate_ids(rulebook: Rulebook, symptom_id: str) -> frozenset[str]:
    """Return the symptom and every cause the rule graph reaches from it."""
    return frozenset({symptom_id} | nx.descendants(rulebook.graph, symptom_id))


def plan_probes(registry: ProbeRegistry, rulebook: Rulebook, options: LiveOptions, default_namespace: str,
                *, capture_possible: bool) -> Plan:
    """Choose the probes and namespaces for the options. Raises ScopeError for an unknown symptom."""
    symptom_id = resolve_symptom(options.symptom, rulebook) if options.symptom else None
    relevant = candidate_ids(rulebook, symptom_id) if symptom_id else None

    specs = []
    notes = []
    for spec in registry.specs():
        if relevant is not None and spec.evidence_for and not relevant & set(spec.evidence_for):
            continue
        if spec.intrusive and not capture_possible:
            notes.append(f"{spec.id} left out: it is intrusive and needs --allow-capture (or confirmation "
                         "in an interactive terminal)")
            continue
        specs.append(spec)

    if options.all_namespaces:
        namespaces = [""]
    else:
        namespaces = list(dict.fromkeys(options.namespaces or (default_namespace,)))
    return Plan(symptom_id, relevant, specs, namespaces, notes)


def namespace_tasks(plan: Plan) -> list[Task]:
    """Return the cluster and namespace probes, with Istio policies read in the root namespace too."""
    tasks = [Task(spec, Target()) for spec in plan.specs_of_scope("cluster")]
    for spec in plan.specs_of_scope("namespace"):
        namespaces = list(plan.namespaces)
        if spec.id.startswith("istio.") and "" not in namespaces and ISTIO_ROOT_NAMESPACE not in namespaces:
            namespaces.append(ISTIO_ROOT_NAMESPACE)
        tasks.extend(Task(spec, Target(namespace=namespace)) for namespace in namespaces)
    return tasks


def pods_from(observations: Iterable[Observation]) -> list[PodInfo]:
    """Read the pods of every ok `kube.pods` observation."""
    return [_pod_info(item) for item in _listed_items(observations, "kube.pods")]


def _listed_items(observations: Iterable[Observation], probe_id: str) -> Iterator[dict[str, Any]]:
    """Yield the objects of every ok `probe_id` observation whose output is a JSON list."""
    for observation in observations:
        if observation.probe_id != probe_id or observation.status is not ProbeStatus.OK:
            continue
        try:
            items = json.loads(observation.output).get("items", [])
        except (ValueError, AttributeError):
            continue
        yield from (item for item in items if isinstance(item, dict))


def _pod_info(pod: dict[str, Any]) -> PodInfo:
    metadata = pod.get("metadata", {})
    spec = pod.get("spec", {})
    status = pod.get("status", {})
    containers = [c.get("name", "") for c in spec.get("containers", [])]
    native_sidecars = [c.get("name", "") for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    statuses = status.get("containerStatuses", []) + status.get("initContainerStatuses", [])
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses if s.get("name") == PROXY_CONTAINER)
    proxy_state = next((_state(s) for s in statuses if s.get("name") == PROXY_CONTAINER), "")
    app = next((name for name in containers if name != PROXY_CONTAINER), "")
    app_port = next((int(port.get("containerPort", 0)) for container in spec.get("containers", [])
                     if container.get("name") == app for port in container.get("ports", [])), 0)
    return PodInfo(namespace=metadata.get("namespace", ""), name=metadata.get("name", ""),
                   labels=dict(metadata.get("labels") or {}),
                   has_sidecar=PROXY_CONTAINER in containers + native_sidecars,
                   proxy_restarts=restarts, app_container=app, app_port=app_port, proxy_state=proxy_state)


def _state(status: dict[str, Any]) -> str:
    """Return "running", or "waiting: REASON" / "terminated: REASON", from a container status."""
    for state, detail in (status.get("state") or {}).items():
        if state == "running":
            return "running"
        reason = (detail or {}).get("reason", "")
        return f"{state}: {reason}" if reason else state
    return ""


def service_selectors(observations: Iterable[Observation]) -> dict[tuple[str, str], dict[str, str]]:
    """Return (namespace, service) -> selector from every ok `kube.services` observation."""
    selectors: dict[tuple[str, str], dict[str, str]] = {}
    for item in _listed_items(observations, "kube.services"):
        metadata = item.get("metadata", {})
        selector = item.get("spec", {}).get("selector") or {}
        selectors[(metadata.get("namespace", ""), metadata.get("name", ""))] = dict(selector)
    return selectors


def choose_pods(pods: Sequence[PodInfo], options: LiveOptions,
                selectors: dict[tuple[str, str], dict[str, str]], notes: list[str]) -> tuple[list[PodInfo], list[PodInfo]]:
    """Return (pods of the scope, pods of the destination) for the pod probes."""
    sources: list[PodInfo] = []
    destinations: list[PodInfo] = []
    if options.source_workload:
        sources = [pod for pod in pods if _is_workload(pod, options.source_workload)]
        if not sources:
            notes.append(f"no pod of workload {options.source_workload!r} among the pods read")
    if options.destination_service:
        destinations = _service_pods(pods, options.destination_service, selectors)
        if not destinations:
            notes.append(f"no pod behind service {options.destination_service!r} among the pods read")

    if options.source_workload or options.destination_service:
        chosen = list({(p.namespace, p.name): p for p in sources + destinations}.values())
    else:
        chosen = sorted((pod for pod in pods if pod.has_sidecar), key=lambda pod: (pod.namespace, pod.name))

    without_sidecar = [pod for pod in chosen if not pod.has_sidecar]
    for pod in without_sidecar:
        notes.append(f"pod {pod.namespace}/{pod.name} has no istio-proxy container, so no sidecar probe runs on it")
    chosen = [pod for pod in chosen if pod.has_sidecar]
    if len(chosen) > options.max_pods:
        notes.append(f"{len(chosen)} pods in scope; the sidecar probes read the first {options.max_pods} "
                     "(narrow the scope with --from, --to or -l)")
        chosen = chosen[:options.max_pods]
    return chosen, [pod for pod in destinations if pod.has_sidecar]


def _is_workload(pod: PodInfo, workload: str) -> bool:
    # Accept kubectl's TYPE/NAME form (deploy/frontend) and NAME.NAMESPACE.
    name = workload.rsplit("/", 1)[-1].split(".")[0]
    return (pod.name == name or pod.labels.get("app") == name
            or pod.labels.get("app.kubernetes.io/name") == name
            or pod.labels.get("service.istio.io/canonical-name") == name)


def _service_pods(pods: Sequence[PodInfo], service: str, selectors: dict[tuple[str, str], dict[str, str]]) -> list[PodInfo]:
    name, _, namespace = service.rsplit("/", 1)[-1].partition(".")
    matches = [(ns, svc) for (ns, svc) in selectors if svc == name and (not namespace or ns == namespace)]
    if not matches:
        # Without the Service object, fall back to the conventional app label.
        return [pod for pod in pods if _is_workload(pod, name) and (not namespace or pod.namespace == namespace)]
    chosen = []
    for ns, svc in matches:
        selector = selectors[(ns, svc)]
        if not selector:
            continue
        chosen.extend(pod for pod in pods
                      if pod.namespace == ns and all(pod.labels.get(k) == v for k, v in selector.items()))
    return chosen


def pod_tasks(plan: Plan, chosen: Sequence[PodInfo], destinations: Sequence[PodInfo]) -> list[Task]:
    """Return the pod probes for the chosen pods.

    A capture runs on one destination pod (else one chosen pod), and the TLS
    probe on the destination pods (else the chosen ones).
    """
    tasks = []
    for spec in plan.specs_of_scope("pod"):
        if spec.intrusive:
            pods = list(destinations[:1] or chosen[:1])
        elif spec.id == "openssl.workload-tls":
            pods = list(destinations or chosen)
        elif spec.id == "kubectl.proxy-logs-previous":
            pods = [pod for pod in chosen if pod.proxy_restarts > 0]
        else:
            pods = list(chosen)
        tasks.extend(Task(spec, Target(namespace=pod.namespace, pod=pod.name, container=PROXY_CONTAINER,
                                       app_container=pod.app_container, port=pod.app_port,
                                       proxy_state=pod.proxy_state)) for pod in pods)
    return tasks
