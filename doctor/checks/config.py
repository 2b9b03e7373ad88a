"""Checks of mesh configuration: mTLS modes, proxy sync and SDS secrets.

They read Istio resources (PeerAuthentication, MeshPolicy, DestinationRule),
Envoy admin outputs (config dump, stats), istioctl tables and access logs.
The RBAC checks live in `doctor.checks.config_rbac` and the local rate limit
checks in `doctor.checks.config_ratelimit`; `register` registers all three.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from doctor.checks import HIT, CheckRegistry, CheckResult, config_rbac, config_ratelimit, hit, miss, unknown
from doctor.checks.config_rbac import ISTIO_MTLS_SNI_PREFIX, resource_evidence
from doctor.facts import FactSet
from doctor.model import Evidence
from doctor.parsers import accesslog, envoy_admin, signatures
from doctor.parsers.accesslog import AccessLogEntry
from doctor.parsers.envoy_admin import EnvoyCluster, EnvoyListener, EnvoySecret, EnvoyStat
from doctor.parsers.istio import IstioResource, is_mesh_wide
from doctor.parsers.istioctl import ProxySyncStatus, SecretStatus
from doctor.parsers.kube import PodInfo
from doctor.parsers.signatures import SignatureMatch

logger = logging.getLogger(__name__)

# Evidence lists are capped so one huge input does not flood a report, but counts stay exact.
MAX_EVIDENCE = 5
CONNECT_FAILURE_FLAGS = frozenset({"UF", "UC", "URX"})
CONNECT_FAILURE_SIGNATURES = ("envoy-upstream-reset-before-headers", "traffic-upstream-reset-without-reason")

COLLECT_POLICIES = ("collect `kubectl get peerauthentication,destinationrule -A -o yaml` "
                    "(and `kubectl get meshpolicy,policy -A -o yaml` on Istio before 1.6)")
COLLECT_SERVER_LOG = "collect the server sidecar's access log: `kubectl logs SERVER_POD -c istio-proxy --since=1h`"
COLLECT_CLIENT_LOG = "collect the client sidecar's access log: `kubectl logs CLIENT_POD -c istio-proxy --since=1h`"
COLLECT_CONFIG_DUMP = "collect `istioctl proxy-config all POD -n NAMESPACE -o json` (the Envoy /config_dump)"
COLLECT_PROXY_STATUS = "collect `istioctl proxy-status` (with `--verbose` on Istio 1.22 and later)"


def register(registry: CheckRegistry) -> None:
    """Register the mTLS, sync, SDS, RBAC and local rate limit checks.

    Each check decides itself when its inputs are absent, so its unknown
    names the exact command to collect them.
    """
    registry.register(
        "config.strict_mtls_in_force", strict_mtls_in_force,
        "A STRICT PeerAuthentication or MeshPolicy, or an inbound listener that accepts only mTLS.")
    registry.register(
        "config.dr_tls_overrides_mtls", dr_tls_overrides_mtls,
        "A DestinationRule (or the client's cluster built from it) sends plaintext or non-Istio TLS "
        "to a host whose server requires Istio mTLS.")
    registry.register(
        "config.dr_keeps_istio_mtls", dr_keeps_istio_mtls,
        "The DestinationRules read keep Istio mTLS: at least one sets ISTIO_MUTUAL and none sends "
        "plaintext or non-Istio TLS to a host that requires mTLS.")
    registry.register(
        "config.upstream_connect_errors", upstream_connect_errors,
        "Requests failed with 503 UF, UC or URX, or a client printed Envoy's "
        "'upstream connect error or disconnect/reset before headers'.")
    registry.register(
        "config.cluster_uses_istio_mtls", cluster_uses_istio_mtls,
        "The client's Envoy cluster for a DestinationRule host originates Istio mTLS "
        "(TLS transport socket with an outbound_ SNI).")
    registry.register(
        "config.filter_chain_not_found", filter_chain_not_found,
        "The server sidecar closed connections that matched no filter chain (NR "
        "filter_chain_not_found), as it does for plaintext sent to a STRICT mTLS port.")
    registry.register(
        "config.proxy_not_synced", proxy_not_synced,
        "istioctl proxy-status shows STALE for a proxy, or Envoy stats count rejected xDS updates.")
    registry.register(
        "config.sds_secret_warming", sds_secret_warming,
        "A secret Envoy requested from SDS was never supplied: it is still warming.")
    registry.register(
        "config.warming_secret_referenced", warming_secret_referenced,
        "A listener or cluster uses a secret that is still warming, so its TLS handshakes fail.")
    config_rbac.register(registry)
    config_ratelimit.register(registry)


# --- evidence helpers -------------------------------------------------------------------------

def entry_evidence(entry: AccessLogEntry, note: str = "", supports: bool = True) -> Evidence:
    return Evidence(entry.source, entry.line, entry.text, supports, note)


def fact_evidence(fact: Any, note: str = "", supports: bool = True) -> Evidence:
    return Evidence(fact.source, fact.line, getattr(fact, "text", "") or "", supports, note)


def match_evidence(match: SignatureMatch, note: str = "") -> Evidence:
    return Evidence(match.source, match.line, match.text, note=note or f"signature {match.signature_id}")


def resources_of(facts: FactSet, *kinds: str) -> list[IstioResource]:
    return [resource for resource in facts.of(IstioResource) if resource.kind in kinds]


def capped(evidence: list[Evidence]) -> list[Evidence]:
    return evidence[:MAX_EVIDENCE]


# --- mTLS modes -------------------------------------------------------------------------------

def _peer_mode(resource: IstioResource) -> str | None:
    mtls = resource.spec.get("mtls")
    mode = mtls.get("mode") if isinstance(mtls, dict) else None
    return str(mode).upper() if mode else None


def _port_modes(resource: IstioResource) -> dict[str, str]:
    modes = {}
    for port, settings in (resource.spec.get("portLevelMtls") or {}).items():
        if isinstance(settings, dict) and settings.get("mode"):
            modes[str(port)] = str(settings["mode"]).upper()
    return modes


def strict_scopes(facts: FactSet) -> tuple[list[IstioResource], set[str | None]]:
    """Return the STRICT peer authentication resources and the namespaces they cover.

    None in the namespace set means mesh-wide. A workload-selector policy
    is counted for its whole namespace, because pod labels are rarely among
    the inputs.
    """
    strict = []
    namespaces: set[str | None] = set()
    for resource in resources_of(facts, "PeerAuthentication"):
        if _peer_mode(resource) == "STRICT" or "STRICT" in _port_modes(resource).values():
            strict.append(resource)
            namespaces.add(None if is_mesh_wide(resource) else resource.namespace)
    return strict, namespaces


def strict_mtls_in_force(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    peers = resources_of(facts, "PeerAuthentication")
    strict, _ = strict_scopes(facts)
    evidence = []
    for resource in strict:
        scope = "mesh-wide" if is_mesh_wide(resource) else f"namespace {resource.namespace}"
        evidence.append(resource_evidence(resource, None, f"{resource.ref} requires mTLS ({scope})"))
        evidence.append(resource_evidence(resource, "mtls.mode", "mode STRICT"))

    listeners = _strict_inbound_listeners(facts)
    for listener in listeners:
        evidence.append(fact_evidence(listener, f"listener {listener.name} accepts only TLS with a client "
                                                "certificate (mTLS)"))
    if evidence:
        return hit(*capped(evidence), count=len(strict) + len(listeners))

    if not peers and not facts.of(EnvoyListener):
        return unknown(f"no PeerAuthentication, MeshPolicy or inbound listener among the inputs; "
                       f"{COLLECT_POLICIES}")
    against = [resource_evidence(resource, "mtls.mode", f"{resource.ref} mode {_peer_mode(resource) or 'UNSET'}",
                                 supports=False) for resource in peers]
    return miss(*capped(against), reason="no STRICT PeerAuthentication or MeshPolicy, and no inbound "
                                         "listener that accepts only mTLS")


def _strict_inbound_listeners(facts: FactSet) -> list[EnvoyListener]:
    """Listeners whose every filter chain requires TLS with a client certificate."""
    strict = []
    for listener in facts.of(EnvoyListener):
        chains = listener.filter_chains
        if not chains:
            continue
        if all(chain.has_tls and chain.require_client_certificate for chain in chains):
            strict.append(listener)
    return strict


# --- DestinationRule TLS ----------------------------------------------------------------------

_MESH_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")


def host_namespace(host: str, rule_namespace: str | None, known_namespaces: set[str] | None = None) -> str | None:
    """Return the namespace a DestinationRule host resolves to, or None for hosts outside the mesh.

    A short name ("app") is in the rule's namespace; "app.orders.svc",
    "app.orders.svc.cluster.local" and "*.orders.svc.cluster.local" are in
    "orders". "app.orders" is read as a namespace only when "orders" is a
    namespace seen in the inputs, because it looks like an external domain too.
    """
    name = host[2:] if host.startswith("*.") else host
    parts = name.split(".")
    if not name or name == "*":
        return None
    if len(parts) == 1:
        return None if host.startswith("*.") else rule_namespace
    if name.endswith(_MESH_SUFFIXES) and len(parts) >= 3:
        return parts[-4] if name.endswith(".svc.cluster.local") and len(parts) >= 4 else parts[1]
    if len(parts) == 2 and known_namespaces and parts[1] in known_namespaces:
        return parts[1]
    return None


def _known_namespaces(facts: FactSet) -> set[str]:
    namespaces = {resource.namespace for resource in facts.of(IstioResource) if resource.namespace}
    namespaces.update(pod.namespace for pod in facts.of(PodInfo) if pod.namespace)
    return namespaces


def _tls_settings(resource: IstioResource) -> list[tuple[str, str | None]]:
    """Return (spec path, TLS mode or None when absent) for the rule and each port setting."""
    policy = resource.spec.get("trafficPolicy")
    if not isinstance(policy, dict):
        return [("host", None)]
    settings = []
    tls = policy.get("tls")
    settings.append(("trafficPolicy.tls.mode" if isinstance(tls, dict) else "trafficPolicy",
                     str(tls.get("mode")).upper() if isinstance(tls, dict) and tls.get("mode") else None))
    for index, port in enumerate(policy.get("portLevelSettings") or []):
        port_tls = port.get("tls") if isinstance(port, dict) else None
        if isinstance(port_tls, dict) and port_tls.get("mode"):
            settings.append((f"trafficPolicy.portLevelSettings.{index}.tls.mode", str(port_tls["mode"]).upper()))
    return settings


def _legacy_authentication(facts: FactSet) -> list[IstioResource]:
    return [resource for resource in facts.of(IstioResource)
            if resource.legacy_kind in ("MeshPolicy", "Policy")]


def dr_tls_overrides_mtls(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    rules = resources_of(facts, "DestinationRule")
    _, strict_namespaces = strict_scopes(facts)
    legacy = _legacy_authentication(facts)
    known = _known_namespaces(facts)
    evidence: list[Evidence] = []
    against: list[Evidence] = []

    for rule in rules:
        host = str(rule.spec.get("host", ""))
        namespace = host_namespace(host, rule.namespace, known)
        if namespace is None:
            continue
        if strict_namespaces and None not in strict_namespaces and namespace not in strict_namespaces:
            continue
        for path, mode in _tls_settings(rule):
            if mode == "DISABLE":
                evidence.append(resource_evidence(
                    rule, path, f"{rule.ref} sets tls.mode DISABLE for {host}: the client sidecar sends "
                                "plaintext to a server that requires mTLS"))
            elif mode in ("SIMPLE", "MUTUAL"):
                evidence.append(resource_evidence(
                    rule, path, f"{rule.ref} sets tls.mode {mode} for in-mesh host {host}: the client "
                                "originates its own TLS instead of Istio mTLS (use ISTIO_MUTUAL)"))
            elif mode is None and legacy:
                evidence.append(resource_evidence(
                    rule, path, f"{rule.ref} matches {host} but has no tls settings: before auto mTLS "
                                "(Istio 1.5) a DestinationRule without tls made the client send plaintext, "
                                "and this mesh uses the pre-1.6 authentication API"))
            elif mode is None:
                against.append(resource_evidence(
                    rule, path, f"{rule.ref} has no tls settings; since Istio 1.5 auto mTLS keeps "
                                "ISTIO_MUTUAL for such rules unless meshConfig.enableAutoMtls is false",
                    supports=False))
            elif mode == "ISTIO_MUTUAL":
                against.append(resource_evidence(rule, path, f"{rule.ref} uses ISTIO_MUTUAL", supports=False))

    evidence.extend(_plaintext_clusters(facts, strict_namespaces))
    if evidence:
        if legacy:
            evidence.append(resource_evidence(legacy[0], None, f"{legacy[0].ref}: the pre-1.6 authentication API "
                                                                "is in use, so auto mTLS is not in force"))
        return hit(*capped(evidence), count=len(evidence))
    if not rules and not facts.of(EnvoyCluster):
        return unknown(f"no DestinationRule and no client cluster config among the inputs; {COLLECT_POLICIES}, "
                       f"or {COLLECT_CONFIG_DUMP} for the client pod")
    return miss(*capped(against), reason="no DestinationRule or client cluster sends plaintext or non-Istio "
                                         "TLS to a host that requires mTLS")


def dr_keeps_istio_mtls(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    rules = resources_of(facts, "DestinationRule")
    if not rules:
        return unknown(f"no DestinationRule among the inputs; {COLLECT_POLICIES}")
    conflict = dr_tls_overrides_mtls(facts, args)
    if conflict.result == HIT:
        return miss(reason="a DestinationRule or client cluster sends plaintext or non-Istio TLS")
    mutual = [resource_evidence(rule, path, f"{rule.ref} sets ISTIO_MUTUAL")
              for rule in rules for path, mode in _tls_settings(rule) if mode == "ISTIO_MUTUAL"]
    if not mutual:
        return miss(reason="no DestinationRule sets ISTIO_MUTUAL explicitly")
    return hit(*capped(mutual), count=len(mutual))


def _cluster_host(name: str) -> str | None:
    """Return the host of an Istio outbound cluster name (outbound|PORT|SUBSET|HOST)."""
    parts = name.split("|")
    if len(parts) == 4 and parts[0] == "outbound":
        return parts[3]
    return None


def _plaintext_clusters(facts: FactSet, strict_namespaces: set[str | None]) -> list[Evidence]:
    """Client outbound clusters to strict in-mesh hosts that have no TLS transport socket."""
    if not strict_namespaces:
        return []
    evidence = []
    for cluster in facts.of(EnvoyCluster):
        host = _cluster_host(cluster.name)
        if host is None or cluster.has_tls:
            continue
        namespace = host_namespace(host, None)
        if namespace is None or (None not in strict_namespaces and namespace not in strict_namespaces):
            continue
        evidence.append(fact_evidence(cluster, f"client cluster {cluster.name} has no TLS transport socket: "
                                               "it connects in plaintext"))
    return evidence


def cluster_uses_istio_mtls(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    clusters = facts.of(EnvoyCluster)
    if not clusters:
        return unknown(f"no client cluster config among the inputs; {COLLECT_CONFIG_DUMP} for the client pod")
    hosts = set()
    known = _known_namespaces(facts)
    for rule in resources_of(facts, "DestinationRule"):
        host = str(rule.spec.get("host", ""))
        namespace = host_namespace(host, rule.namespace, known)
        if namespace is not None:
            hosts.add(host.split(".")[0] + "." + namespace)

    evidence = []
    for cluster in clusters:
        host = _cluster_host(cluster.name)
        if host is None or not cluster.has_tls or not (cluster.sni or "").startswith(ISTIO_MTLS_SNI_PREFIX):
            continue
        namespace = host_namespace(host, None)
        short = f"{host.split('.')[0]}.{namespace}" if namespace else host
        if hosts and short not in hosts:
            continue
        evidence.append(fact_evidence(cluster, f"cluster {cluster.name} originates Istio mTLS (SNI {cluster.sni})"))
    if evidence:
        return hit(*capped(evidence), count=len(evidence))
    return miss(reason="no client cluster for the DestinationRule hosts originates Istio mTLS")


def upstream_connect_errors(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    entries = [entry for entry in facts.of(AccessLogEntry)
               if entry.response_code in (503, 0) and CONNECT_FAILURE_FLAGS.intersection(entry.response_flags)]
    matches = [match for match in facts.of(SignatureMatch) if match.signature_id in CONNECT_FAILURE_SIGNATURES]
    if not entries and not matches:
        if not facts.has_kind(accesslog.KIND) and not facts.has_kind(signatures.KIND):
            return unknown(f"no access log and no client output among the inputs; {COLLECT_CLIENT_LOG}")
        return miss(reason="no 503 with UF, UC or URX and no 'upstream connect error' line")
    evidence = [entry_evidence(entry, "the client sidecar could not complete the upstream connection")
                for entry in entries[:MAX_EVIDENCE]]
    evidence += [match_evidence(match) for match in matches[:MAX_EVIDENCE]]
    return hit(*evidence, count=len(entries) + len(matches))


def filter_chain_not_found(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    entries = [entry for entry in facts.of(AccessLogEntry)
               if entry.response_code_details == "filter_chain_not_found"
               or (entry.connection_termination_details or "") == "filter_chain_not_found"]
    stats = [stat for stat in facts.of(EnvoyStat) if _is_no_chain_stat(stat) and stat.value > 0]
    evidence = [entry_evidence(entry, "the server sidecar found no filter chain for this connection: "
                                      "a plaintext client on a port that accepts only mTLS")
                for entry in entries[:MAX_EVIDENCE]]
    evidence += [fact_evidence(stat, f"{int(stat.value)} connection(s) matched no filter chain")
                 for stat in stats[:MAX_EVIDENCE]]
    if evidence:
        return hit(*evidence, count=len(entries) + sum(int(stat.value) for stat in stats))
    if not facts.has_kind(accesslog.KIND) and not facts.has_kind(envoy_admin.KIND_STATS):
        return unknown(f"no server sidecar access log or stats among the inputs; {COLLECT_SERVER_LOG}, or "
                       "`kubectl exec SERVER_POD -c istio-proxy -- pilot-agent request GET stats`")
    return miss(reason="no connection ended with filter_chain_not_found and no listener counts "
                       "no_filter_chain_match")


def _is_no_chain_stat(stat: EnvoyStat) -> bool:
    return stat.name.endswith(".no_filter_chain_match") or stat.name == "envoy_listener_no_filter_chain_match"


# --- proxy sync -------------------------------------------------------------------------------

def proxy_not_synced(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    rows = facts.of(ProxySyncStatus)
    rejected = [stat for stat in facts.of(EnvoyStat)
                if (stat.name.endswith(".update_rejected") or stat.name.endswith("_update_rejected"))
                and stat.value > 0]
    evidence = []
    against = []
    stale_count = 0
    for row in rows:
        stale = {kind: state for kind, state in row.sync.items() if state == "STALE"}
        if stale:
            stale_count += 1
            detail = ", ".join(f"{kind} {state}" + (f" ({row.sync_details[kind]})" if kind in row.sync_details else "")
                               for kind, state in stale.items())
            evidence.append(fact_evidence(row, f"proxy {row.proxy}: {detail} against {row.istiod or 'istiod'}"))
        elif row.not_synced:
            against.append(fact_evidence(row, f"proxy {row.proxy}: NOT SENT only means istiod had nothing of "
                                              "that type to send", supports=False))
    for stat in rejected:
        evidence.append(fact_evidence(stat, f"Envoy rejected {int(stat.value)} xDS update(s)"))
    if evidence:
        return hit(*capped(evidence), *capped(against), count=stale_count + len(rejected))

    if not rows and not facts.has_kind(envoy_admin.KIND_STATS):
        return unknown(f"no proxy-status output or Envoy stats among the inputs; {COLLECT_PROXY_STATUS}")
    if rows and all(not row.sync for row in rows) and not facts.has_kind(envoy_admin.KIND_STATS):
        return unknown("this proxy-status layout shows subscribed types, not sync states; run "
                       "`istioctl proxy-status --verbose`")
    return miss(*capped(against), reason="every proxy is SYNCED (or NOT SENT) and no xDS update was rejected")


# --- SDS secrets ------------------------------------------------------------------------------

def sds_secret_warming(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    secrets = facts.of(EnvoySecret)
    rows = facts.of(SecretStatus)
    warming = [secret for secret in secrets if secret.state == "warming"]
    warming_rows = [row for row in rows if (row.status or "").upper() == "WARMING"]
    evidence = [fact_evidence(secret, f"secret {secret.name} was requested from SDS and never supplied "
                                      f"(version {secret.version_info or 'none'})") for secret in warming]
    evidence += [fact_evidence(row, f"istioctl shows secret {row.resource_name} WARMING") for row in warming_rows]
    if evidence:
        return hit(*capped(evidence), count=len(warming) + len(warming_rows))
    if not secrets and not rows:
        return unknown("no secrets from the config dump or `istioctl proxy-config secret` among the inputs; "
                       "collect `istioctl proxy-config secret POD -n NAMESPACE`")
    return miss(reason="every secret Envoy requested is active")


def warming_secret_referenced(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    warming = {secret.name: secret for secret in facts.of(EnvoySecret) if secret.state == "warming"}
    warming.update({row.resource_name: row for row in facts.of(SecretStatus)
                    if (row.status or "").upper() == "WARMING"})
    if not warming:
        if not facts.of(EnvoySecret) and not facts.of(SecretStatus):
            return unknown("no secrets among the inputs; collect `istioctl proxy-config secret POD -n NAMESPACE`")
        return miss(reason="no secret is warming")
    listeners = facts.of(EnvoyListener)
    clusters = facts.of(EnvoyCluster)
    if not listeners and not clusters:
        return unknown(f"secrets are warming but no listener or cluster config was read to see who uses them; "
                       f"{COLLECT_CONFIG_DUMP}")
    evidence = []
    for cluster in clusters:
        for name in _secret_refs(cluster.certificate_secrets, cluster.validation_secret):
            if name in warming:
                evidence.append(fact_evidence(cluster, f"cluster {cluster.name} uses warming secret {name}"))
    for listener in listeners:
        for chain in listener.filter_chains:
            for name in chain.certificate_secrets:
                if name in warming:
                    evidence.append(Evidence(listener.source, chain.line or listener.line, chain.text or listener.text,
                                             note=f"listener {listener.name} uses warming secret {name}"))
    if evidence:
        return hit(*capped(evidence), count=len(evidence))
    return miss(reason=f"no listener or cluster uses the warming secret(s) {', '.join(sorted(warming))}")


def _secret_refs(certificates: Iterable[str], validation: str | None) -> list[str]:
    names = list(certificates)
    if validation:
        names.append(validation)
    return names
