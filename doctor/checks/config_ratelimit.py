"""Checks of 429s from Envoy's local rate limit filter (local_ratelimit).

The filter's config comes from a config dump or from the EnvoyFilter that
patches it in; both give `LocalRateLimit` facts. Its 429s carry the
response flag RL and the response code detail `local_rate_limited`. A
config that is enabled but not enforced runs in shadow mode: it counts
`rate_limited` and lets the request through.

With descriptors, a request that matches a descriptor takes a token from
the descriptor's bucket and, while `always_consume_default_token_bucket`
keeps its default of true, also from the route's bucket. The recording in
tests/data/recorded/envoy-admin shows it on Envoy 1.40: with a route bucket
of 5, one request that passed the `/limited/bar` descriptor left 4 tokens
for `/limited/foo`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Mapping

from doctor.checks import CheckRegistry, CheckResult, hit, miss, unknown
from doctor.facts import FactSet
from doctor.model import Evidence
from doctor.parsers import accesslog, envoy_admin, signatures
from doctor.parsers.accesslog import AccessLogEntry
from doctor.parsers.envoy_admin import EnvoyStat, LocalRateLimit, RateLimitDescriptor
from doctor.parsers.signatures import SignatureMatch

logger = logging.getLogger(__name__)

MAX_EVIDENCE = 5
LOCAL_DETAIL = "local_rate_limited"
COLLECT_CONFIG = ("collect the EnvoyFilter that configures the limit (`kubectl get envoyfilter -A -o yaml`) "
                  "or the proxy config (`istioctl proxy-config all POD -n NAMESPACE -o json`)")
COLLECT_LOG = "collect the limited sidecar's access log: `kubectl logs POD -c istio-proxy --since=1h`"
# Request headers whose value the access log records, so descriptor entries built from them can be matched.
LOGGED_HEADERS = {":path": "path", ":method": "method", ":authority": "authority"}


def register(registry: CheckRegistry) -> None:
    registry.register(
        "config.local_rate_limited", local_rate_limited,
        "Requests rejected by the local rate limit: 429 with RL / local_rate_limited, the "
        "`local_rate_limited` body, or an `enforced` counter above zero.")
    registry.register(
        "config.local_rate_limit_enforced", local_rate_limit_enforced,
        "A local rate limit with a token bucket that is enabled and enforced for some requests.")
    registry.register(
        "config.local_rate_limit_shadow", local_rate_limit_shadow,
        "A local rate limit with a token bucket that is enabled but enforced for no request (shadow mode).")
    registry.register(
        "config.http_429_not_local", http_429_not_local,
        "429 responses that the local rate limit did not produce (from the upstream application or a "
        "global rate limit service).")
    registry.register(
        "config.descriptors_share_bucket", descriptors_share_bucket,
        "An enforced local rate limit whose descriptor requests also take tokens from the route's "
        "token bucket.")
    registry.register(
        "config.route_bucket_drained_by_descriptors", route_bucket_drained_by_descriptors,
        "Within one fill interval, requests outside the descriptors were limited before the route bucket's "
        "max_tokens passed, while descriptor requests passed.")


# --- helpers ----------------------------------------------------------------------------------

def _limit_evidence(limit: LocalRateLimit, note: str, supports: bool = True) -> Evidence:
    return Evidence(limit.source, limit.line, limit.text, supports, note)


def _describe_bucket(limit: LocalRateLimit) -> str:
    interval = f"{limit.fill_interval_s:g}s" if limit.fill_interval_s is not None else "?"
    return f"{limit.max_tokens} token(s), {limit.tokens_per_fill or 1} per {interval}"


def _where(limit: LocalRateLimit) -> str:
    parts = [f"route {limit.route}" if limit.route else f"{limit.scope} level"]
    if limit.listener:
        parts.append(f"listener {limit.listener}")
    return ", ".join(parts)


def _is_local_429(entry: AccessLogEntry) -> bool:
    return entry.response_code == 429 and ("RL" in entry.response_flags or entry.response_code_details == LOCAL_DETAIL)


def _limits_with_bucket(facts: FactSet) -> list[LocalRateLimit]:
    return [limit for limit in facts.of(LocalRateLimit) if limit.max_tokens is not None]


def _stat_value(stat: EnvoyStat, suffix: str) -> bool:
    return stat.name.endswith(f"http_local_rate_limit.{suffix}") or stat.name.endswith(
        f"http_local_rate_limit_{suffix}")


# --- 429s -------------------------------------------------------------------------------------

def local_rate_limited(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    entries = [entry for entry in facts.of(AccessLogEntry) if _is_local_429(entry)]
    matches = [match for match in facts.of(SignatureMatch) if match.signature_id == "envoy-local-rate-limited"]
    enforced = [stat for stat in facts.of(EnvoyStat) if _stat_value(stat, "enforced") and stat.value > 0]
    evidence = [Evidence(entry.source, entry.line, entry.text, note="rejected by the local rate limit")
                for entry in entries[:MAX_EVIDENCE]]
    evidence += [Evidence(match.source, match.line, match.text, note=f"signature {match.signature_id}")
                 for match in matches[:MAX_EVIDENCE]]
    evidence += [Evidence(stat.source, stat.line, stat.text,
                          note=f"{int(stat.value)} request(s) rejected by the local rate limit")
                 for stat in enforced[:MAX_EVIDENCE]]
    if evidence:
        return hit(*evidence, count=len(entries) + len(matches) + sum(int(stat.value) for stat in enforced))
    if not any(facts.has_kind(kind) for kind in (accesslog.KIND, signatures.KIND, envoy_admin.KIND_STATS)):
        return unknown(f"no access log, client output or Envoy stats among the inputs; {COLLECT_LOG}")
    return miss(reason="no request was rejected by the local rate limit")


def http_429_not_local(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    all_429 = [entry for entry in facts.of(AccessLogEntry) if entry.response_code == 429]
    if not all_429:
        if not facts.has_kind(accesslog.KIND):
            return unknown(f"no access log among the inputs; {COLLECT_LOG}")
        return miss(reason="no request was answered 429")
    elsewhere = [entry for entry in all_429 if not _is_local_429(entry)]
    if not elsewhere:
        return miss(*(Evidence(entry.source, entry.line, entry.text, False, "this 429 came from the local "
                                                                             "rate limit") for entry in all_429[:2]),
                    reason="every 429 came from the local rate limit")
    evidence = []
    for entry in elsewhere[:MAX_EVIDENCE]:
        origin = ("the upstream application answered 429" if entry.response_code_details == "via_upstream"
                  else f"a rate limit other than the local one ({entry.response_code_details or 'no detail'})")
        evidence.append(Evidence(entry.source, entry.line, entry.text, note=origin))
    return hit(*evidence, count=len(elsewhere))


# --- config -----------------------------------------------------------------------------------

def local_rate_limit_enforced(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    limits = _limits_with_bucket(facts)
    if not facts.of(LocalRateLimit):
        return unknown(f"no local rate limit config among the inputs; {COLLECT_CONFIG}")
    enforced = [limit for limit in limits if limit.enabled_percent > 0 and limit.enforced_percent > 0]
    if enforced:
        return hit(*(_limit_evidence(limit, f"{_where(limit)}: bucket of {_describe_bucket(limit)}, enforced for "
                                            f"{limit.enforced_percent:g}% of requests")
                     for limit in enforced[:MAX_EVIDENCE]), count=len(enforced))
    against = [_limit_evidence(limit, f"{_where(limit)}: enabled {limit.enabled_percent:g}%, enforced "
                                      f"{limit.enforced_percent:g}%", supports=False) for limit in limits]
    return miss(*against[:MAX_EVIDENCE], reason="no local rate limit with a token bucket is enforced")


def local_rate_limit_shadow(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    if not facts.of(LocalRateLimit):
        return unknown(f"no local rate limit config among the inputs; {COLLECT_CONFIG}")
    shadow = [limit for limit in _limits_with_bucket(facts) if limit.shadow_mode]
    if shadow:
        return hit(*(_limit_evidence(limit, f"{_where(limit)}: enabled for {limit.enabled_percent:g}% but enforced "
                                            "for 0%: requests over the limit are counted, not rejected")
                     for limit in shadow[:MAX_EVIDENCE]), count=len(shadow))
    return miss(reason="no local rate limit runs in shadow mode")


def descriptors_share_bucket(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    if not facts.of(LocalRateLimit):
        return unknown(f"no local rate limit config among the inputs; {COLLECT_CONFIG}")
    evidence = []
    against = []
    for limit in _limits_with_bucket(facts):
        if not limit.descriptors or limit.enforced_percent == 0:
            continue
        if limit.always_consume_default_token_bucket is False:
            against.append(_limit_evidence(limit, f"{_where(limit)}: always_consume_default_token_bucket is false, "
                                                  "so descriptor requests leave the route bucket alone",
                                           supports=False))
            continue
        evidence.append(_limit_evidence(limit, f"{_where(limit)}: route bucket of {_describe_bucket(limit)}, "
                                               "shared with every descriptor request"))
        for descriptor in limit.descriptors:
            evidence.append(Evidence(limit.source, descriptor.line, descriptor.text,
                                     note=f"requests matching {_describe_entries(descriptor)} take a token from "
                                          f"their own bucket ({descriptor.max_tokens}) and from the route bucket"))
    if evidence:
        return hit(*evidence[:2 * MAX_EVIDENCE], count=len(evidence))
    return miss(*against[:MAX_EVIDENCE], reason="no enforced local rate limit combines a route bucket with "
                                                "descriptors that consume it")


def _describe_entries(descriptor: RateLimitDescriptor) -> str:
    return ", ".join(f"{key}={value}" for key, value in descriptor.entries)


# --- observed drain ---------------------------------------------------------------------------

def _descriptor_keys(limit: LocalRateLimit) -> dict[str, str] | None:
    """Map descriptor keys to the access-log field that records them, or None when one cannot be."""
    keys: dict[str, str] = {}
    for action in limit.descriptor_actions:
        if not action.startswith("request_headers "):
            return None
        header, _, key = action[len("request_headers "):].partition(" -> ")
        field = LOGGED_HEADERS.get(header.lower())
        if field is None:
            return None
        keys[key] = field
    return keys


def _matches_descriptor(entry: AccessLogEntry, descriptor: RateLimitDescriptor, keys: dict[str, str]) -> bool:
    for key, value in descriptor.entries:
        field = keys.get(key)
        if field is None or getattr(entry, field) != value:
            return False
    return True


def route_bucket_drained_by_descriptors(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    limits = [limit for limit in _limits_with_bucket(facts) if limit.descriptors and limit.enforced_percent > 0
              and limit.always_consume_default_token_bucket is not False]
    if not limits:
        if not facts.of(LocalRateLimit):
            return unknown(f"no local rate limit config among the inputs; {COLLECT_CONFIG}")
        return miss(reason="no enforced local rate limit has descriptors that share the route bucket")
    entries = facts.of(AccessLogEntry)
    if not entries:
        # NOTE: two /stats scrapes one fill interval apart would show the same drain through the
        # `ok` counter, but this check reads access logs only.
        return unknown("no access log of the limited sidecar among the inputs, so how the route bucket was "
                       f"spent is not known; {COLLECT_LOG} covering one fill interval")

    results = [_drain_in_window(limit, entries) for limit in limits]
    for found in results:
        if isinstance(found, list) and found:
            return hit(*found, count=len(found))
    reasons = [found for found in results if isinstance(found, str)]
    if len(reasons) == len(results):
        return unknown(reasons[0])
    return miss(reason="no request outside the descriptors was limited before the route bucket's max_tokens "
                       "had passed")


def _drain_in_window(limit: LocalRateLimit, entries: list[AccessLogEntry]) -> list[Evidence] | str:
    """Return the evidence of a drained route bucket, an empty list, or the reason it cannot be judged."""
    keys = _descriptor_keys(limit)
    if keys is None:
        return ("the descriptor entries come from rate limit actions the access log does not record "
                f"({', '.join(limit.descriptor_actions) or 'none found'})")
    route_names = {entry.route_name for entry in entries}
    if limit.route in route_names:
        on_route = [entry for entry in entries if entry.route_name == limit.route]
    else:
        on_route = [entry for entry in entries if entry.direction in ("inbound", None) and entry.method]
    on_route.sort(key=lambda entry: (entry.timestamp is None, entry.timestamp, entry.line))
    if not on_route:
        return []

    start = on_route[0].timestamp
    interval = timedelta(seconds=limit.fill_interval_s or 0)
    passed_outside = 0
    descriptor_passed: list[AccessLogEntry] = []
    for entry in on_route:
        if start is not None and entry.timestamp is not None and interval and entry.timestamp - start >= interval:
            break
        in_descriptor = any(_matches_descriptor(entry, descriptor, keys) for descriptor in limit.descriptors)
        if in_descriptor:
            if entry.response_code != 429:
                descriptor_passed.append(entry)
            continue
        if _is_local_429(entry):
            if passed_outside < (limit.max_tokens or 0) and descriptor_passed:
                return [
                    _limit_evidence(limit, f"{_where(limit)}: route bucket of {_describe_bucket(limit)}"),
                    Evidence(descriptor_passed[0].source, descriptor_passed[0].line, descriptor_passed[0].text,
                             note=f"{len(descriptor_passed)} descriptor request(s) passed and took route tokens"),
                    Evidence(entry.source, entry.line, entry.text,
                             note=f"limited after only {passed_outside} of {limit.max_tokens} route tokens went to "
                                  "requests outside the descriptors, within one fill interval"),
                ]
            return []
        if entry.response_code is not None and entry.response_code < 400:
            passed_outside += 1
    return []
