"""Probes that read the Kubernetes API with the kubernetes client: pods, events, services, endpoints,
namespaces, nodes and the Istio security and networking resources.

Each probe is one GET. Its observation's argv is ("GET", path with query),
and its output is the response's JSON in kubectl's `-o json` shape (indented,
every list item carrying its apiVersion and kind), so the readers that take
kubectl output read it unchanged. A 403 becomes `forbidden`, a 404 a
`failed` run whose reason starts with "not found", a slow response `timed_out`.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any, Sequence
from urllib.parse import quote

from doctor.live.context import KubeconfigError, ProbeContext
from doctor.live.registry import Permission, ProbeRegistry, Target
from doctor.model import Observation, ProbeStatus
from doctor.redact import redact_text

logger = logging.getLogger(__name__)

# Istio's root namespace, where mesh-wide policies live (meshConfig.rootNamespace's default).
# NOTE: a mesh installed with another root namespace needs `-n ROOT` to include its policies.
ISTIO_ROOT_NAMESPACE = "istio-system"

SECURITY_GROUP = "security.istio.io"
NETWORKING_GROUP = "networking.istio.io"

_503_CAUSES = ("http-503", "upstream-connect-failure", "upstream-app-down", "no-healthy-upstream",
               "outlier-ejection", "circuit-breaker-overflow")
_MTLS_CAUSES = ("dr-tls-mode-conflict", "plaintext-to-strict", "rbac-principals-without-mtls")
_AUTHZ_CAUSES = ("http-403", "rbac-no-allow-matched", "rbac-deny-matched", "rbac-principal-mismatch",
                 "rbac-principals-without-mtls", "jwt-audience-mismatch", "jwt-missing-request-principals")
_JWT_CAUSES = ("http-401", "jwt-expired", "jwt-not-yet-valid", "jwt-issuer-not-configured", "jwt-kid-not-in-jwks",
               "jwks-fetch-failed", "jwks-cluster-without-tls", "jwt-missing", "jwt-audience-mismatch",
               "jwt-missing-request-principals")

# (plural, group, summary, evidence_for) of the Istio resources the probes list.
ISTIO_RESOURCES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("peerauthentications", SECURITY_GROUP, "PeerAuthentication policies (mTLS mode per workload and port)",
     _MTLS_CAUSES),
    ("authorizationpolicies", SECURITY_GROUP, "AuthorizationPolicies (ALLOW, DENY, CUSTOM rules)", _AUTHZ_CAUSES),
    ("requestauthentications", SECURITY_GROUP, "RequestAuthentications (JWT issuers, JWKS, audiences)",
     _JWT_CAUSES),
    ("destinationrules", NETWORKING_GROUP, "DestinationRules (TLS mode, connection pools, outlier detection)",
     _MTLS_CAUSES + ("circuit-breaker-overflow", "outlier-ejection", "no-healthy-upstream")),
    ("virtualservices", NETWORKING_GROUP, "VirtualServices (routes, retries, timeouts)",
     ("http-503", "request-timeout", "upstream-connect-failure")),
    ("sidecars", NETWORKING_GROUP, "Sidecar resources (the configuration each proxy receives)",
     ("proxy-memory-limit-too-low", "stale-proxy-config", "proxy-config-not-synced")),
    ("serviceentries", NETWORKING_GROUP, "ServiceEntries (mesh-external hosts, such as JWKS servers)",
     ("http-503", "jwks-fetch-failed", "jwks-cluster-without-tls")),
    ("gateways", NETWORKING_GROUP, "Gateways (server TLS settings)",
     ("tls-handshake-failure", "cert-expired", "san-mismatch", "unknown-ca", "plaintext-against-tls")),
    ("envoyfilters", NETWORKING_GROUP, "EnvoyFilters (local rate limits and other patches)",
     ("http-429", "local-rate-limit-exhausted", "local-rate-limit-shared-bucket", "local-rate-limit-shadow-mode")),
)


# --- one GET ------------------------------------------------------------------------------


def api_get(context: ProbeContext, probe_id: str, path: str, target: Target,
            query: Sequence[tuple[str, str]] = (), headers_out: dict[str, str] | None = None) -> Observation:
    """GET `path` from the API server and return the observation of that call.

    `headers_out`, when given, receives the response's HTTP headers.
    """
    query_text = "&".join(f"{key}={quote(value, safe='')}" for key, value in query)
    shown = f"{path}?{query_text}" if query_text else path
    argv = ("GET", shown)
    started_at = datetime.now(timezone.utc)
    clock = time.monotonic()
    timeout = context.options.probe_timeout_s

    def observation(status: ProbeStatus, output: str, reason: str, code: int | None) -> Observation:
        return Observation(probe_id=probe_id, argv=argv, started_at=started_at,
                           duration_s=round(time.monotonic() - clock, 6), exit_status=code,
                           status=status, output=output, reason=redact_text(reason), target=target.label())

    try:
        client = context.api_client()
    except KubeconfigError as error:
        return observation(ProbeStatus.UNAVAILABLE, "", str(error), None)

    from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ProtocolError, ReadTimeoutError

    try:
        method, url, headers, _, _ = client.param_serialize(
            "GET", path, query_params=list(query), header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        response = client.call_api(method, url, header_params=headers, _request_timeout=(timeout, timeout))
        body = response.read()
        code = response.status
        if headers_out is not None:
            headers_out.update({key: value for key, value in response.getheaders().items()})
    except NewConnectionError as error:
        # urllib3 derives NewConnectionError from ConnectTimeoutError, but a refused connection is no timeout.
        return observation(ProbeStatus.FAILED, "", f"cannot reach the API server: {error}", None)
    except (ReadTimeoutError, ConnectTimeoutError, TimeoutError) as error:
        return observation(ProbeStatus.TIMED_OUT, "", f"the API server did not answer within {timeout:g} s: {error}",
                           None)
    except (HTTPError, ProtocolError, OSError) as error:
        if _is_timeout(error):
            return observation(ProbeStatus.TIMED_OUT, "",
                               f"the API server did not answer within {timeout:g} s: {error}", None)
        return observation(ProbeStatus.FAILED, "", f"cannot reach the API server: {error}", None)
    except Exception as error:  # noqa: BLE001 - the client raises its own ApiException and others
        status = getattr(error, "status", None)
        if status is not None:
            return _http_error(observation, int(status), getattr(error, "body", "") or "", path)
        if _is_timeout(error):
            return observation(ProbeStatus.TIMED_OUT, "",
                               f"the API server did not answer within {timeout:g} s: {error}", None)
        logger.exception("probe %s: GET %s failed", probe_id, shown)
        return observation(ProbeStatus.FAILED, "", f"GET {shown} failed: {type(error).__name__}: {error}", None)

    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    if code >= 400:
        return _http_error(observation, code, text, path)
    return observation(ProbeStatus.OK, _kubectl_json(text), "", code)


def _is_timeout(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError) or "timed out" in str(current).lower():
            return True
        current = getattr(current, "reason", None) or current.__cause__ or current.__context__
        if not isinstance(current, BaseException):
            return False
    return False


def _http_error(observation: Any, code: int, body: str, path: str) -> Observation:
    message = _status_message(body)
    if code == 403:
        return observation(ProbeStatus.FORBIDDEN, "", f"forbidden (HTTP 403): {message}; ask for RBAC "
                                                      "read access to it", code)
    if code == 401:
        return observation(ProbeStatus.FAILED, "", f"unauthorized (HTTP 401): the API server rejected the "
                                                   f"kubeconfig's credentials: {message}", code)
    if code == 404:
        return observation(ProbeStatus.FAILED, "", f"not found (HTTP 404): {path}: {message}", code)
    return observation(ProbeStatus.FAILED, "", f"HTTP {code}: {message}", code)


def _status_message(body: str) -> str:
    try:
        status = json.loads(body)
    except ValueError:
        return body.strip()[:500]
    if isinstance(status, dict):
        return str(status.get("message") or status.get("reason") or body.strip()[:500])
    return body.strip()[:500]


def _kubectl_json(text: str) -> str:
    """Re-indent an API response the way `kubectl get -o json` prints it, with each item's apiVersion and kind."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict) and isinstance(data.get("items"), list) and str(data.get("kind", "")).endswith("List"):
        item_kind = data["kind"][:-len("List")]
        api_version = data.get("apiVersion", "v1")
        data["items"] = [{"apiVersion": api_version, "kind": item_kind, **item} if isinstance(item, dict) else item
                         for item in data["items"]]
    return json.dumps(data, indent=4, ensure_ascii=False) + "\n"


# --- Istio API versions -------------------------------------------------------------------


def served_versions(context: ProbeContext, group: str) -> Observation:
    """Return the discovery response for an API group, fetched once per collection."""
    with context.memo_lock:
        key = f"discovery:{group}"
        if key not in context.memo:
            context.memo[key] = api_get(context, "istio.api-versions", f"/apis/{group}", Target())
        return context.memo[key]


def preferred_version(context: ProbeContext, group: str) -> tuple[str | None, Observation]:
    """Return the group's preferred served version (or None) and the discovery observation."""
    discovery = served_versions(context, group)
    if discovery.status is not ProbeStatus.OK:
        return None, discovery
    try:
        data = json.loads(discovery.output)
        return str(data["preferredVersion"]["version"]), discovery
    except (ValueError, KeyError, TypeError):
        return None, discovery


# --- the probes -----------------------------------------------------------------------------


def _namespaced(prefix: str, target: Target, plural: str) -> str:
    """Return the list path in the target's namespace, or across all namespaces when it has none (-A)."""
    if target.namespace:
        return f"{prefix}/namespaces/{quote(target.namespace, safe='')}/{plural}"
    return f"{prefix}/{plural}"


def _selector_query(context: ProbeContext) -> list[tuple[str, str]]:
    return [("labelSelector", context.options.selector)] if context.options.selector else []


def pods(context: ProbeContext, target: Target) -> Observation:
    """List the pods of the namespace with container and init-container statuses (honours -l)."""
    return api_get(context, "kube.pods", _namespaced("/api/v1", target, "pods"), target,
                   _selector_query(context))


def events(context: ProbeContext, target: Target) -> Observation:
    """List the events of the namespace: kills, back-offs, failed probes and pulls."""
    return api_get(context, "kube.events", _namespaced("/api/v1", target, "events"), target)


def services(context: ProbeContext, target: Target) -> Observation:
    """List the Services of the namespace with their selectors and ports."""
    return api_get(context, "kube.services", _namespaced("/api/v1", target, "services"), target)


def endpoints(context: ProbeContext, target: Target) -> Observation:
    """List the Endpoints of the namespace: the ready and not-ready addresses of each Service."""
    return api_get(context, "kube.endpoints", _namespaced("/api/v1", target, "endpoints"), target)


def namespaces(context: ProbeContext, target: Target) -> Observation:
    """List the namespaces with their labels, such as istio-injection."""
    return api_get(context, "kube.namespaces", "/api/v1/namespaces", target)


def nodes(context: ProbeContext, target: Target) -> Observation:
    """List the nodes with their conditions and heartbeat times."""
    return api_get(context, "kube.nodes", "/api/v1/nodes", target)


def istio_api_versions(context: ProbeContext, target: Target) -> Observation:
    """Record the versions the cluster serves of Istio's security and networking API groups."""
    answers = [served_versions(context, group) for group in (SECURITY_GROUP, NETWORKING_GROUP)]
    failed = [answer for answer in answers if answer.status is not ProbeStatus.OK]
    first = answers[0]
    lines = []
    for group, answer in zip((SECURITY_GROUP, NETWORKING_GROUP), answers):
        if answer.status is ProbeStatus.OK:
            data = json.loads(answer.output)
            versions = [entry.get("version", "") for entry in data.get("versions", [])]
            preferred = data.get("preferredVersion", {}).get("version", "")
            lines.append(f"{group}: served {', '.join(versions)}; preferred {preferred}")
        else:
            lines.append(f"{group}: {answer.status.value}: {answer.reason}")
    status = failed[0].status if len(failed) == len(answers) else ProbeStatus.OK
    reason = "; ".join(answer.reason for answer in failed)
    return Observation(probe_id="istio.api-versions", argv=("GET", "/apis/security.istio.io", "/apis/networking.istio.io"),
                       started_at=first.started_at, duration_s=sum(a.duration_s for a in answers),
                       exit_status=None, status=status, output="\n".join(lines) + "\n", reason=reason,
                       target=target.label())


def _istio_lister(plural: str, group: str):
    probe_id = f"istio.{plural}"

    def list_resources(context: ProbeContext, target: Target) -> Observation:
        version, discovery = preferred_version(context, group)
        if version is None:
            if discovery.exit_status == 404:
                reason = f"the cluster does not serve {group}; is Istio installed?"
            else:
                reason = (f"cannot read which versions of {group} the cluster serves: "
                          f"{discovery.reason or discovery.status.value}")
            status = discovery.status if discovery.status is not ProbeStatus.OK else ProbeStatus.FAILED
            return Observation(probe_id=probe_id, argv=discovery.argv, started_at=discovery.started_at,
                               duration_s=discovery.duration_s, exit_status=discovery.exit_status,
                               status=status, output="", reason=reason, target=target.label())
        path = _namespaced(f"/apis/{group}/{version}", target, plural)
        return api_get(context, probe_id, path, target)

    list_resources.__doc__ = f"List {plural}.{group} at the preferred served version."
    return list_resources


def register(registry: ProbeRegistry) -> None:
    registry.register("kube.pods", pods, "Pods with container and init-container statuses, limits and "
                      "last terminations (the -l selector applies)", scope="namespace",
                      permissions=(Permission("list", "pods"),))
    registry.register("kube.events", events, "Events of the namespace (kills, back-offs, probe failures)",
                      scope="namespace", permissions=(Permission("list", "events"),))
    registry.register("kube.services", services, "Services and their selectors and ports", scope="namespace",
                      permissions=(Permission("list", "services"),), evidence_for=_503_CAUSES + ("request-timeout",))
    registry.register("kube.endpoints", endpoints, "Endpoints: ready and not-ready addresses per service",
                      scope="namespace", permissions=(Permission("list", "endpoints"),),
                      evidence_for=_503_CAUSES + ("request-timeout",))
    registry.register("kube.namespaces", namespaces, "Namespaces and their sidecar injection labels",
                      scope="cluster", permissions=(Permission("list", "namespaces"),),
                      evidence_for=_MTLS_CAUSES)
    registry.register("kube.nodes", nodes, "Nodes: conditions and heartbeat times", scope="cluster",
                      permissions=(Permission("list", "nodes"),),
                      evidence_for=("clock-drift", "jwt-expired", "jwt-not-yet-valid"))
    registry.register("istio.api-versions", istio_api_versions,
                      "The served versions of security.istio.io and networking.istio.io", scope="cluster")
    for plural, group, summary, evidence_for in ISTIO_RESOURCES:
        registry.register(f"istio.{plural}", _istio_lister(plural, group), summary, scope="namespace",
                          permissions=(Permission("list", plural, group=group),), evidence_for=evidence_for)
