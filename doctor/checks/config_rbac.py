"""Checks of 403s from Envoy's RBAC filter, built from Istio AuthorizationPolicy.

Envoy records which policy decided a denial in the access log's response
code details: `rbac_access_denied_matched_policy[none]` when no ALLOW
policy matched, `rbac_access_denied_matched_policy[ns[NS]-policy[NAME]-rule[N]]`
when a DENY policy did. The local reply body `RBAC: access denied` does not
say which. The caller's identity is its SPIFFE principal
`cluster.local/ns/NS/sa/SA`, found by matching the denied request's
downstream address with a pod IP.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Mapping

from doctor.checks import CheckRegistry, CheckResult, hit, miss, unknown
from doctor.checks.traffic import host_ip
from doctor.facts import FactSet
from doctor.model import Evidence
from doctor.parsers import accesslog, signatures
from doctor.parsers.accesslog import AccessLogEntry
from doctor.parsers.envoy_admin import RbacFilter
from doctor.parsers.istio import IstioResource
from doctor.parsers.kube import PodInfo
from doctor.parsers.signatures import SignatureMatch

logger = logging.getLogger(__name__)

MAX_EVIDENCE = 5
DENIED_PREFIX = "rbac_access_denied_matched_policy["
# Istio names the SNI of sidecar-to-sidecar mTLS `outbound_.PORT_.SUBSET_.HOST`.
ISTIO_MTLS_SNI_PREFIX = "outbound_."
_ISTIO_POLICY_NAME = re.compile(r"^ns\[(?P<namespace>[^\]]*)\]-policy\[(?P<name>[^\]]*)\]-rule\[(?P<rule>\d+)\]$")

SERVER_LOG_COMMAND = "`kubectl logs SERVER_POD -c istio-proxy --since=1h`"
COLLECT_SERVER_LOG = f"collect the server sidecar's access log, which names the deciding policy: {SERVER_LOG_COMMAND}"
COLLECT_POLICIES = "collect `kubectl get authorizationpolicy -A -o yaml`"
COLLECT_PODS = "collect `kubectl get pods -A -o json` so the caller's address maps to its service account"


def register(registry: CheckRegistry) -> None:
    registry.register(
        "config.rbac_denied", rbac_denied,
        "Requests denied by Envoy's RBAC filter. `policy` selects the denials: 'none' (no ALLOW "
        "policy matched), 'named' (a DENY policy matched) or 'any'.",
        params=("policy",))
    registry.register(
        "config.deny_policy_matched", deny_policy_matched,
        "The DENY policy and rule named in denied requests' response code details, found in the "
        "AuthorizationPolicies or the RBAC filter config.")
    registry.register(
        "config.allow_policy_exists", allow_policy_exists,
        "An ALLOW AuthorizationPolicy (or RBAC ALLOW filter) exists, so requests it does not match "
        "are denied.")
    registry.register(
        "config.allow_policy_requires_principals", allow_policy_requires_principals,
        "An ALLOW policy whose rules all require source principals or namespaces (peer identities).")
    registry.register(
        "config.caller_principal_not_allowed", caller_principal_not_allowed,
        "The SPIFFE principal of a denied caller (from its pod's service account) is not among the "
        "principals or namespaces the ALLOW policies name.")
    registry.register(
        "config.mtls_not_in_force_for_principals", mtls_not_in_force_for_principals,
        "Peer authentication is PERMISSIVE or DISABLE where principal-based policies apply, or denied "
        "requests arrived without Istio mTLS, so the peer identity is empty.")
    registry.register(
        "config.denied_requests_used_mtls", denied_requests_used_mtls,
        "The denied requests arrived over Istio mTLS (an outbound_ SNI), so the caller's identity "
        "was known to the RBAC filter.")


# --- denials in the access log ----------------------------------------------------------------

@dataclass(frozen=True)
class Denial:
    """One RBAC denial: `policy` is "none", a policy name, or None when the line names none."""

    source: str
    line: int
    text: str
    policy: str | None
    entry: AccessLogEntry | None


def denials(facts: FactSet) -> list[Denial]:
    found = []
    for entry in facts.of(AccessLogEntry):
        details = entry.response_code_details or ""
        if details.startswith(DENIED_PREFIX) and details.endswith("]"):
            found.append(Denial(entry.source, entry.line, entry.text, details[len(DENIED_PREFIX):-1], entry))
    for match in facts.of(SignatureMatch):
        if match.signature_id == "envoy-rbac-denied-matched-policy":
            found.append(Denial(match.source, match.line, match.text, match.groups.get("policy"), None))
        elif match.signature_id == "envoy-rbac-access-denied":
            found.append(Denial(match.source, match.line, match.text, None, None))
    return found


def _denial_evidence(denial: Denial, note: str) -> Evidence:
    return Evidence(denial.source, denial.line, denial.text, note=note)


def rbac_denied(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    selection = str(args.get("policy", "any"))
    found = denials(facts)
    if selection == "none":
        selected = [denial for denial in found if denial.policy == "none"]
        describe = "no ALLOW policy matched"
    elif selection == "named":
        selected = [denial for denial in found if denial.policy not in (None, "none")]
        describe = "a DENY policy matched"
    else:
        selected = found
        describe = "denied by RBAC"

    if selected:
        evidence = [_denial_evidence(denial, describe if denial.policy in (None, "none")
                                     else f"DENY policy {denial.policy} matched") for denial in selected]
        return hit(*evidence[:MAX_EVIDENCE], count=len(selected))

    undecided = [denial for denial in found if denial.policy is None]
    if undecided and not facts.has_kind(accesslog.KIND):
        return unknown(f"'RBAC: access denied' does not say which policy decided; {COLLECT_SERVER_LOG}")
    if not facts.has_kind(accesslog.KIND) and not facts.has_kind(signatures.KIND):
        return unknown(f"no access log or client output among the inputs; {COLLECT_SERVER_LOG}")
    return miss(reason=f"no request {describe}")


def parse_policy_name(name: str) -> tuple[str, str, int] | None:
    """Split Istio's RBAC policy name `ns[NS]-policy[NAME]-rule[N]` into (NS, NAME, N)."""
    match = _ISTIO_POLICY_NAME.match(name)
    if match is None:
        return None
    return match.group("namespace"), match.group("name"), int(match.group("rule"))


def deny_policy_matched(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    named = [denial for denial in denials(facts) if denial.policy not in (None, "none")]
    if not named:
        if not facts.has_kind(accesslog.KIND):
            return unknown(f"no access log names a deciding DENY policy; {COLLECT_SERVER_LOG}")
        return miss(reason="no denied request names a DENY policy")

    policies = {(resource.namespace, resource.name): resource
                for resource in facts.of(IstioResource) if resource.kind == "AuthorizationPolicy"}
    filters = [item for item in facts.of(RbacFilter) if item.action == "DENY"]
    if not policies and not filters:
        return unknown(f"denials name DENY policies, but no AuthorizationPolicy or RBAC config was read; "
                       f"{COLLECT_POLICIES}")

    evidence: list[Evidence] = []
    unmatched = []
    for policy_name in sorted({denial.policy for denial in named if denial.policy}):
        first = next(denial for denial in named if denial.policy == policy_name)
        found = _find_deny_policy(policy_name, policies, filters)
        if not found:
            unmatched.append(policy_name)
            continue
        evidence.append(_denial_evidence(first, f"denied by {policy_name}"))
        evidence.extend(found)
    if evidence:
        return hit(*evidence[:2 * MAX_EVIDENCE], count=len(named))
    return miss(reason=f"the DENY policies {', '.join(unmatched)} named in the access log are not among the "
                       "AuthorizationPolicies read")


def _find_deny_policy(policy_name: str, policies: dict, filters: list[RbacFilter]) -> list[Evidence]:
    evidence = []
    parsed = parse_policy_name(policy_name)
    if parsed is not None:
        namespace, name, rule_index = parsed
        resource = policies.get((namespace, name))
        if resource is not None and str(resource.spec.get("action", "ALLOW")).upper() == "DENY":
            evidence.append(resource_evidence(resource, None, f"{resource.ref} has action DENY"))
            evidence.append(resource_evidence(resource, f"rules.{rule_index}",
                                               f"rule {rule_index} of {resource.ref} matched the request"))
    for rbac in filters:
        for policy in rbac.policies:
            if policy.name == policy_name:
                evidence.append(Evidence(rbac.source, policy.line, policy.text,
                                         note=f"RBAC DENY policy in the proxy config: permissions "
                                              f"{'; '.join(policy.permissions)}"))
    return evidence


def resource_evidence(resource: IstioResource, path: str | None, note: str, supports: bool = True) -> Evidence:
    """Cite a spec path of a resource (its nearest known ancestor), or its kind line."""
    line = resource.line_of(path) if path else (resource.kind_line or resource.line)
    return Evidence(resource.source, line, resource.text_of(line).strip() or resource.ref, supports, note)


# --- ALLOW policies ---------------------------------------------------------------------------

def _allow_policies(facts: FactSet) -> list[IstioResource]:
    return [resource for resource in facts.of(IstioResource) if resource.kind == "AuthorizationPolicy"
            and str(resource.spec.get("action", "ALLOW")).upper() == "ALLOW"]


def _allow_filters(facts: FactSet) -> list[RbacFilter]:
    return [item for item in facts.of(RbacFilter) if item.action == "ALLOW"]


def allow_policy_exists(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    policies = _allow_policies(facts)
    filters = _allow_filters(facts)
    evidence = []
    for resource in policies:
        rules = resource.spec.get("rules")
        detail = "allows nothing (no rules)" if not rules else f"allows only what its {len(rules)} rule(s) match"
        evidence.append(resource_evidence(resource, None, f"{resource.ref} {detail}; every other request "
                                                           "to the workload is denied"))
    for rbac in filters:
        evidence.append(Evidence(rbac.source, rbac.line, rbac.text,
                                 note=f"RBAC ALLOW filter with {len(rbac.policies)} policy(ies) in the proxy config"))
    if evidence:
        return hit(*evidence[:MAX_EVIDENCE], count=len(evidence))
    if not facts.of(IstioResource) and not facts.of(RbacFilter):
        return unknown(f"no AuthorizationPolicy or RBAC config among the inputs; {COLLECT_POLICIES}")
    return miss(reason="no ALLOW AuthorizationPolicy and no RBAC ALLOW filter")


@dataclass(frozen=True)
class AllowedIdentity:
    """A principal or namespace pattern an ALLOW rule accepts, with where it is written."""

    kind: str  # "principal" or "namespace"
    pattern: str
    evidence: Evidence


def allowed_identities(facts: FactSet) -> tuple[list[AllowedIdentity], list[Evidence]]:
    """Return the identities ALLOW rules require, and the rules that accept any identity."""
    identities: list[AllowedIdentity] = []
    open_rules: list[Evidence] = []
    for resource in _allow_policies(facts):
        rules = resource.spec.get("rules") or []
        for rule_index, rule in enumerate(rules):
            sources = rule.get("from") if isinstance(rule, dict) else None
            if not sources:
                open_rules.append(resource_evidence(resource, f"rules.{rule_index}",
                                                     f"rule {rule_index} of {resource.ref} has no `from`: "
                                                     "any caller matches", supports=False))
                continue
            for source_index, item in enumerate(sources):
                source = item.get("source") if isinstance(item, dict) else None
                if not isinstance(source, dict):
                    continue
                base = f"rules.{rule_index}.from.{source_index}.source"
                for kind, key in (("principal", "principals"), ("namespace", "namespaces")):
                    for value_index, value in enumerate(source.get(key) or []):
                        evidence = resource_evidence(resource, f"{base}.{key}.{value_index}",
                                                      f"{resource.ref} allows {kind} {value}")
                        identities.append(AllowedIdentity(kind, str(value), evidence))
                if not source.get("principals") and not source.get("namespaces"):
                    open_rules.append(resource_evidence(resource, base, f"a source of {resource.ref} names no "
                                                                         "principal or namespace",
                                                         supports=False))
    for rbac in _allow_filters(facts):
        for policy in rbac.policies:
            if policy.any_principal:
                open_rules.append(Evidence(rbac.source, policy.line, policy.text, False,
                                           f"RBAC policy {policy.name} accepts any principal"))
            for match_type, value in policy.peer_principals:
                identities.append(AllowedIdentity(
                    "principal", _rbac_pattern(match_type, value),
                    Evidence(rbac.source, policy.line, policy.text,
                             note=f"RBAC policy {policy.name} allows principal {match_type} {value}")))
    return identities, open_rules


def _rbac_pattern(match_type: str, value: str) -> str:
    """Express an Envoy principal matcher in Istio's principal pattern form (no spiffe://)."""
    value = value.removeprefix("spiffe://")
    if match_type == "prefix":
        return value + "*"
    if match_type == "suffix":
        return "*" + value
    if match_type in ("regex", "contains"):
        return f"{match_type}:{value}"
    return value


def allow_policy_requires_principals(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    if not facts.of(IstioResource) and not facts.of(RbacFilter):
        return unknown(f"no AuthorizationPolicy or RBAC config among the inputs; {COLLECT_POLICIES}")
    identities, open_rules = allowed_identities(facts)
    if identities:
        evidence = [identity.evidence for identity in identities[:MAX_EVIDENCE]]
        return hit(*evidence, *open_rules[:MAX_EVIDENCE], count=len(identities))
    return miss(*open_rules[:MAX_EVIDENCE], reason="no ALLOW rule requires a principal or namespace")


# --- caller identity --------------------------------------------------------------------------

def principal_of(pod: PodInfo) -> str:
    return f"cluster.local/ns/{pod.namespace or 'default'}/sa/{pod.service_account or 'default'}"


def pattern_matches(pattern: str, value: str) -> bool:
    """Match an Istio principal or namespace pattern: exact, `*`, `prefix*`, `*suffix`."""
    if pattern.startswith("regex:"):
        return re.fullmatch(pattern[len("regex:"):], "spiffe://" + value) is not None \
            or re.fullmatch(pattern[len("regex:"):], value) is not None
    if pattern.startswith("contains:"):
        return pattern[len("contains:"):] in value
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return pattern == value


def caller_principal_not_allowed(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    denied = [denial for denial in denials(facts) if denial.entry is not None and denial.policy == "none"]
    if not denied:
        if not facts.has_kind(accesslog.KIND):
            return unknown(f"no server access log shows the denied caller's address; {COLLECT_SERVER_LOG}, "
                           f"and {COLLECT_PODS}")
        return miss(reason="no request was denied for matching no ALLOW policy")
    identities, _ = allowed_identities(facts)
    if not identities:
        return unknown(f"no ALLOW rule naming principals or namespaces was read; {COLLECT_POLICIES}")

    # NOTE: the caller's identity comes from pods only. A caller's certificate (its /certs or
    # config dump secrets) would also name it, but a bundle rarely records which proxy is the caller.
    pods_by_ip: dict[str, PodInfo] = {}
    for pod in facts.of(PodInfo):
        for address in (pod.pod_ip, *pod.pod_ips):
            if address:
                pods_by_ip[address] = pod
    callers = {}
    for denial in denied:
        host = host_ip(denial.entry.downstream_remote_address)
        if host and host in pods_by_ip:
            callers.setdefault(principal_of(pods_by_ip[host]), (pods_by_ip[host], denial))
    if not callers:
        addresses = sorted({host_ip(denial.entry.downstream_remote_address) or "-" for denial in denied})
        return unknown(f"no pod among the inputs has the address of a denied caller ({', '.join(addresses[:3])}); "
                       f"{COLLECT_PODS}")

    evidence: list[Evidence] = []
    allowed_callers = []
    for principal, (pod, denial) in sorted(callers.items()):
        namespace = principal.split("/")[2]
        matched = [identity for identity in identities
                   if (identity.kind == "principal" and pattern_matches(identity.pattern, principal))
                   or (identity.kind == "namespace" and pattern_matches(identity.pattern, namespace))]
        if matched:
            allowed_callers.append(principal)
            evidence.extend(Evidence(item.evidence.source, item.evidence.line, item.evidence.text, False,
                                     f"{principal} is allowed by this rule") for item in matched[:2])
            continue
        evidence.append(Evidence(pod.source, pod.service_account_line or pod.line, f"{pod.namespace}/{pod.name} service account "
                                                       f"{pod.service_account or 'default'}",
                                 note=f"the denied caller at {host_ip(denial.entry.downstream_remote_address)} "
                                      f"is {principal}"))
        evidence.append(_denial_evidence(denial, "denied: no ALLOW policy matched"))
        evidence.extend(identity.evidence for identity in identities[:3])
    mismatched = [principal for principal in callers if principal not in allowed_callers]
    if mismatched:
        return hit(*evidence[:3 * MAX_EVIDENCE], count=len(mismatched),
                   reason=f"caller principal(s) {', '.join(mismatched)} are not allowed")
    return miss(*evidence[:MAX_EVIDENCE], reason="the denied callers' principals are allowed by a rule, so "
                                                 "another condition of the rule (path, method, port) failed")


# --- mTLS behind principals -------------------------------------------------------------------

def _inbound_denied_entries(facts: FactSet) -> list[AccessLogEntry]:
    return [denial.entry for denial in denials(facts) if denial.entry is not None]


def mtls_not_in_force_for_principals(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    identities, _ = allowed_identities(facts)
    evidence: list[Evidence] = []
    against: list[Evidence] = []

    policy_namespaces = {resource.namespace for resource in _allow_policies(facts)}
    for resource in facts.of(IstioResource):
        if resource.kind != "PeerAuthentication":
            continue
        mtls = resource.spec.get("mtls") if isinstance(resource.spec.get("mtls"), dict) else {}
        mode = str(mtls.get("mode", "UNSET")).upper()
        applies = resource.namespace is None or resource.namespace == "istio-system" \
            or resource.namespace in policy_namespaces
        if not applies:
            continue
        line_path = "mtls.mode"
        if mode in ("PERMISSIVE", "DISABLE"):
            evidence.append(resource_evidence(resource, line_path,
                                               f"{resource.ref} mode {mode}: plaintext callers reach the "
                                               "workload with no peer identity, so principal rules cannot "
                                               "match them"))
        elif mode == "STRICT":
            against.append(resource_evidence(resource, line_path, f"{resource.ref} requires mTLS",
                                              supports=False))

    for entry in _inbound_denied_entries(facts):
        if entry.requested_server_name is None and entry.direction == "inbound":
            evidence.append(Evidence(entry.source, entry.line, entry.text,
                                     note="denied request arrived without an SNI: not sidecar mTLS, so "
                                          "the caller had no peer identity"))
        elif (entry.requested_server_name or "").startswith(ISTIO_MTLS_SNI_PREFIX):
            against.append(Evidence(entry.source, entry.line, entry.text, False,
                                    f"denied request arrived over Istio mTLS (SNI {entry.requested_server_name})"))
    if evidence and identities:
        return hit(*evidence[:MAX_EVIDENCE], *against[:MAX_EVIDENCE], count=len(evidence))
    if not evidence and not against:
        return unknown("neither peer authentication nor a denied request among the inputs; collect "
                       f"`kubectl get peerauthentication -A -o yaml` and the server sidecar's access log: "
                       f"{SERVER_LOG_COMMAND}")
    if evidence and not identities:
        return miss(*evidence[:MAX_EVIDENCE], reason="mTLS is not enforced, but no ALLOW rule depends on "
                                                     "principals or namespaces")
    return miss(*against[:MAX_EVIDENCE], reason="mTLS is in force where principal rules apply")


def denied_requests_used_mtls(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    entries = _inbound_denied_entries(facts)
    if not entries:
        return unknown(f"no access log line of a denied request; {COLLECT_SERVER_LOG}")
    over_mtls = [entry for entry in entries if (entry.requested_server_name or "").startswith(ISTIO_MTLS_SNI_PREFIX)]
    if over_mtls:
        return hit(*(Evidence(entry.source, entry.line, entry.text,
                              note=f"the caller used Istio mTLS (SNI {entry.requested_server_name}), so its "
                                   "identity reached the RBAC filter") for entry in over_mtls[:MAX_EVIDENCE]),
                   count=len(over_mtls))
    return miss(reason="no denied request carries Istio's mTLS SNI")


