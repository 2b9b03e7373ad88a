"""Checks for identity failures: JWT rejections, JWKS problems, clock drift and certificates.

They compare a token's claims (exp, nbf, iat, iss, aud, kid) with the time
of the failing requests and with the configuration: RequestAuthentication
jwtRules, Envoy jwt_authn providers and JWKS key ids. Certificate validity
is compared with the time of the TLS failures.

The time of a failing request comes from three sources, in this order.
First the `Date` header of the reply that followed the token in a curl
transcript, then access-log entries of rejected requests, then timestamps
of log lines with a known error signature. All three are the clock of the proxy that judged the
request, which is the clock Envoy compared the token with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from doctor.checks import CheckRegistry, CheckResult, hit, miss, unknown
from doctor.facts import FactSet
from doctor.model import Evidence
from doctor.parsers.accesslog import AccessLogEntry
from doctor.parsers.istio import IstioResource
from doctor.parsers.jwt import Jwks, JwtProvider, JwtToken
from doctor.parsers.signatures import SignatureMatch
from doctor.parsers.tls import CertificateInfo, TlsHandshake

logger = logging.getLogger(__name__)

# Envoy's jwt_authn default for JwtProvider.clock_skew_seconds.
DEFAULT_LEEWAY_SECONDS = 60
# Evidence lists are capped so one huge log does not flood a report, but counts stay exact.
MAX_EVIDENCE = 5

COLLECT_TOKEN = ("collect the failing request with its token (`curl -sv -H 'Authorization: "
                 "Bearer …' URL`) or the token's decoded claims as JSON")
COLLECT_REQUEST_TIME = ("collect the access log of the sidecar that rejected the token "
                        "(`kubectl logs POD -c istio-proxy`) or the `curl -i` output with the "
                        "reply's Date header")
COLLECT_JWT_CONFIG = ("collect `kubectl get requestauthentication -A -o yaml` or the proxy's "
                      "jwt_authn configuration (`istioctl proxy-config listener POD -o json`)")
COLLECT_JWKS = ("collect the JWKS (`curl -s JWKS_URI`) or the proxy's jwt_authn configuration "
                "with its local_jwks (`istioctl proxy-config listener POD -o json`)")
COLLECT_ENVOY_JWT = ("collect the Envoy configuration with the jwt_authn filter and its clusters "
                     "(`istioctl proxy-config all POD -o yaml`, or the Envoy bootstrap)")
COLLECT_CERTIFICATES = ("collect the certificates: `istioctl proxy-config secret POD -o json`, "
                        "`openssl s_client -connect HOST:PORT -showcerts`, or the mesh root with "
                        "`kubectl get configmap istio-ca-root-cert -n NAMESPACE -o yaml`")
COLLECT_AUTHORIZATION = "collect `kubectl get authorizationpolicy -A -o yaml`"

# Envoy's jwt_authn failure statuses: the catalogue signature and the
# %RESPONSE_CODE_DETAILS% text (jwt_authn_access_denied{...}) of each.
JWT_REJECTIONS: dict[str, tuple[str, str]] = {
    "expired": ("envoy-jwt-expired", "Jwt_is_expired"),
    "not-yet-valid": ("envoy-jwt-not-yet-valid", "Jwt_not_yet_valid"),
    "issuer-not-configured": ("envoy-jwt-issuer-not-configured", "Jwt_issuer_is_not_configured"),
    "kid-not-found": ("envoy-jwks-kid-not-found", "Jwks_doesn't_have_key_to_match_kid_or_alg"),
    "jwks-fetch-failed": ("envoy-jwks-remote-fetch-failed", "Jwks_remote_fetch_is_failed"),
    "audience": ("envoy-jwt-audience-not-allowed", "Audiences_in_Jwt_are_not_allowed"),
    "missing": ("envoy-jwt-missing", "Jwt_is_missing"),
    "verification-fails": ("envoy-jwt-verification-fails", "Jwt_verification_fails"),
}


@dataclass(frozen=True)
class _TlsReason:
    """The forms one TLS failure reason takes in each kind of input."""

    signatures: frozenset[str]
    verify_codes: frozenset[int]
    alert_words: tuple[str, ...]  # lower-case words of OpenSSL error reasons
    envoy_words: tuple[str, ...]  # upper- or lower-case words of Envoy failure reasons


# OpenSSL verify codes: 10 certificate has expired, 9 not yet valid; 2, 18, 19,
# 20, 21 issuer unknown or self-signed; 62 hostname mismatch (X509_V_ERR_*).
TLS_REASONS: dict[str, _TlsReason] = {
    "expired": _TlsReason(
        frozenset({"tls-peer-certificate-expired", "tls-alert-certificate-expired",
                   "x509-certificate-expired"}),
        frozenset({9, 10}), ("certificate expired",),
        ("CERTIFICATE_EXPIRED", "certificate_has_expired", "certificate has expired")),
    "unknown-ca": _TlsReason(
        frozenset({"tls-alert-unknown-ca", "tls-unknown-issuer", "x509-unknown-authority"}),
        frozenset({2, 18, 19, 20, 21}), ("unknown ca",),
        ("TLSV1_ALERT_UNKNOWN_CA", "unable_to_get_local_issuer", "unable to get local issuer",
         "self_signed_certificate", "self-signed certificate")),
    "san-mismatch": _TlsReason(
        frozenset({"tls-san-mismatch", "x509-hostname-mismatch"}),
        frozenset({62}), (),
        ("SAN_matcher", "SAN matcher")),
    "wrong-version": _TlsReason(
        frozenset({"tls-wrong-version-number"}),
        frozenset(), ("wrong version number",),
        ("WRONG_VERSION_NUMBER",)),
    "certificate-required": _TlsReason(
        frozenset({"tls-alert-certificate-required"}),
        frozenset(), ("certificate required",),
        ("CERTIFICATE_REQUIRED",)),
}


def register(registry: CheckRegistry) -> None:
    _register_jwt_checks(registry)
    _register_tls_checks(registry)


def _register_jwt_checks(registry: CheckRegistry) -> None:
    registry.register(
        "identity.jwt_rejected", jwt_rejected,
        "Envoy's jwt_authn rejected requests with the given reason (local reply text or "
        "access-log response code details).",
        params=("reason",))
    registry.register(
        "identity.token_expired", token_expired,
        "A token's exp claim is before the time of the failing request, beyond the leeway.",
        params=("leeway_seconds",))
    registry.register(
        "identity.token_not_yet_valid", token_not_yet_valid,
        "A token's nbf claim is after the time of the failing request, beyond the leeway.",
        params=("leeway_seconds",))
    registry.register(
        "identity.clock_skew", clock_skew,
        "A token was issued (iat or nbf) after the proxy's time of the request, beyond the "
        "leeway: the issuer's and the proxy's clocks disagree.",
        params=("leeway_seconds",))
    registry.register(
        "identity.token_issuer_not_configured", token_issuer_not_configured,
        "A token's iss claim equals no issuer of a RequestAuthentication or jwt_authn provider.")
    registry.register(
        "identity.token_kid_not_in_jwks", token_kid_not_in_jwks,
        "A token's kid is not among the key ids of the JWKS for its issuer.")
    registry.register(
        "identity.token_audience_not_allowed", token_audience_not_allowed,
        "A token's aud claim has none of the audiences configured for its issuer.")
    registry.register(
        "identity.jwks_cluster_without_tls", jwks_cluster_without_tls,
        "A jwt_authn provider fetches an https jwks_uri through a cluster without a TLS "
        "transport socket.")
    registry.register(
        "identity.rbac_denied_without_token", rbac_denied_without_token,
        "An RBAC denial is shown for a request that carried no JWT.")
    registry.register(
        "identity.rbac_denied_with_token", rbac_denied_with_token,
        "Every RBAC denial shown is for a request that carried a JWT.")
    registry.register(
        "identity.request_principals_required", request_principals_required,
        "An AuthorizationPolicy needs requestPrincipals or request.auth claims, which only a "
        "verified JWT provides.")


def _register_tls_checks(registry: CheckRegistry) -> None:
    registry.register(
        "identity.tls_failure", tls_failure,
        "TLS handshakes failed for the given reason (expired, unknown-ca, san-mismatch, "
        "wrong-version, certificate-required) in s_client runs, access logs or log lines.",
        params=("reason",))
    registry.register(
        "identity.certificate_expired", certificate_expired,
        "A certificate among the inputs expired before the first failure (or before now, when "
        "no failure time is known).")
    registry.register(
        "identity.ca_certificate_expired", ca_certificate_expired,
        "A CA certificate (a root or intermediate, such as the mesh root) expired before the "
        "first failure, so every certificate chained to it fails verification.")


# --- time references ----------------------------------------------------------


@dataclass(frozen=True)
class _Moment:
    """A time of a failure, with the evidence it comes from."""

    at: datetime
    evidence: Evidence
    description: str


def _jwt_failure_moments(facts: FactSet) -> list[_Moment]:
    moments = []
    for entry in facts.of(AccessLogEntry):
        details = entry.response_code_details or ""
        if entry.timestamp is None:
            continue
        if details.startswith("jwt_authn_access_denied") or entry.response_code in (401, 403):
            moments.append(_Moment(_utc(entry.timestamp), Evidence(entry.source, entry.line, entry.text),
                                   f"the {entry.response_code} in the access log"))
    for match in facts.of(SignatureMatch):
        if match.timestamp is not None and match.symptom in ("http-401", "http-403"):
            moments.append(_Moment(match.timestamp, Evidence(match.source, match.line, match.text),
                                   f"the log line {match.signature_id}"))
    for token in facts.of(JwtToken):
        if token.observed_at is not None and token.response_code in (401, 403):
            moments.append(_Moment(token.observed_at, Evidence(token.source, token.line, token.text),
                                   f"the {token.response_code} reply's Date header"))
    return sorted(moments, key=lambda moment: moment.at)


def _tls_failure_moments(facts: FactSet) -> list[_Moment]:
    moments = []
    for entry in facts.of(AccessLogEntry):
        failed = entry.upstream_transport_failure_reason or (
            entry.response_code == 503 and {"UF", "UC", "URX"} & set(entry.response_flags))
        if entry.timestamp is not None and failed:
            moments.append(_Moment(_utc(entry.timestamp), Evidence(entry.source, entry.line, entry.text),
                                   "the failed request in the access log"))
    for match in facts.of(SignatureMatch):
        if match.timestamp is not None and match.symptom in (
                "tls-handshake-failure", "http-503", "proxy-config-not-synced"):
            moments.append(_Moment(match.timestamp, Evidence(match.source, match.line, match.text),
                                   f"the log line {match.signature_id}"))
    return sorted(moments, key=lambda moment: moment.at)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _reference(token: JwtToken, moments: list[_Moment], earliest: bool) -> _Moment | None:
    """Return the time the proxy judged `token`: its reply's Date header, else a failure time."""
    if token.observed_at is not None:
        evidence = Evidence(token.source, token.line, token.text)
        return _Moment(token.observed_at, evidence, "the reply's Date header")
    if not moments:
        return None
    return moments[0] if earliest else moments[-1]


def _format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _format_span(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"


def _leeway(args: Mapping[str, Any]) -> timedelta:
    return timedelta(seconds=int(args.get("leeway_seconds", DEFAULT_LEEWAY_SECONDS)))


# --- tokens -------------------------------------------------------------------


def _distinct_tokens(facts: FactSet) -> list[JwtToken]:
    """Return one token per fingerprint, preferring the occurrence with a reply time."""
    chosen: dict[str, JwtToken] = {}
    for token in facts.of(JwtToken):
        key = token.fingerprint or f"{token.source}:{token.line}"
        current = chosen.get(key)
        if current is None or (current.observed_at is None and token.observed_at is not None):
            chosen[key] = token
    return list(chosen.values())


def _token_evidence(token: JwtToken, note: str, supports: bool = True) -> Evidence:
    return Evidence(token.source, token.line, token.text, supports, note)


def jwt_rejected(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    reason = str(args["reason"])
    if reason not in JWT_REJECTIONS:
        return unknown(f"unknown jwt_authn rejection reason {reason!r}; expected one of "
                       + ", ".join(JWT_REJECTIONS))
    signature_id, detail = JWT_REJECTIONS[reason]

    evidence: list[Evidence] = []
    moments: list[datetime] = []
    count = 0
    for entry in facts.of(AccessLogEntry):
        if detail in (entry.response_code_details or ""):
            count += 1
            if entry.timestamp is not None:
                moments.append(_utc(entry.timestamp))
            if len(evidence) < MAX_EVIDENCE:
                evidence.append(Evidence(entry.source, entry.line, entry.text,
                                         note=f"response code details {entry.response_code_details}"))
    for match in facts.of(SignatureMatch):
        if match.signature_id == signature_id:
            count += 1
            if match.timestamp is not None:
                moments.append(match.timestamp)
            if len(evidence) < MAX_EVIDENCE * 2:
                evidence.append(Evidence(match.source, match.line, match.text,
                                         note=f"signature {signature_id}"))

    if not count:
        answered = any(token.response_code is not None for token in facts.of(JwtToken))
        if not facts.of(AccessLogEntry) and not facts.of(SignatureMatch) and not answered:
            return unknown("no access log, proxy log or reply among the inputs shows how "
                           "requests were answered; " + COLLECT_REQUEST_TIME)
        return miss(reason=f"no request was rejected by jwt_authn with {detail.replace('_', ' ')!r}")
    return hit(*evidence, count=count, first_seen=min(moments, default=None),
               last_seen=max(moments, default=None))


def token_expired(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    tokens = _distinct_tokens(facts)
    if not tokens:
        return unknown("no JWT among the inputs; " + COLLECT_TOKEN)
    with_exp = [token for token in tokens if token.expires_at is not None]
    if not with_exp:
        return miss(*(_token_evidence(token, "the token has no exp claim", False)
                      for token in tokens[:MAX_EVIDENCE]),
                    reason="no token among the inputs has an exp claim")

    leeway = _leeway(args)
    moments = _jwt_failure_moments(facts)
    supporting: list[Evidence] = []
    against: list[Evidence] = []
    for token in with_exp:
        reference = _reference(token, moments, earliest=True)
        if reference is None:
            continue
        late = reference.at - token.expires_at
        if late > leeway:
            supporting.append(_token_evidence(
                token, f"exp {_format_time(token.expires_at)} is {_format_span(late)} before "
                       f"{reference.description} at {_format_time(reference.at)}"))
            if reference.evidence.source != token.source:
                supporting.append(_with_note(reference.evidence, "time of the failing request"))
        else:
            against.append(_token_evidence(
                token, f"exp {_format_time(token.expires_at)} is not before "
                       f"{reference.description} at {_format_time(reference.at)}", False))

    if not supporting and not against:
        return unknown("the tokens' exp cannot be compared with anything: no time of the "
                       "failing requests among the inputs; " + COLLECT_REQUEST_TIME)
    if supporting:
        return hit(*supporting[:MAX_EVIDENCE * 2], *against[:MAX_EVIDENCE], count=len(supporting))
    return miss(*against[:MAX_EVIDENCE], reason="every token was unexpired when it was rejected")


def token_not_yet_valid(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    tokens = _distinct_tokens(facts)
    if not tokens:
        return unknown("no JWT among the inputs; " + COLLECT_TOKEN)
    with_nbf = [token for token in tokens if token.not_before is not None]
    if not with_nbf:
        return miss(reason="no token among the inputs has an nbf claim")

    leeway = _leeway(args)
    moments = _jwt_failure_moments(facts)
    supporting: list[Evidence] = []
    against: list[Evidence] = []
    for token in with_nbf:
        reference = _reference(token, moments, earliest=False)
        if reference is None:
            continue
        early = token.not_before - reference.at
        if early > leeway:
            supporting.append(_token_evidence(
                token, f"nbf {_format_time(token.not_before)} is {_format_span(early)} after "
                       f"{reference.description} at {_format_time(reference.at)}"))
        else:
            against.append(_token_evidence(
                token, f"nbf {_format_time(token.not_before)} is not after "
                       f"{reference.description} at {_format_time(reference.at)}", False))

    if not supporting and not against:
        return unknown("no time of the failing requests among the inputs; "
                       + COLLECT_REQUEST_TIME)
    if supporting:
        return hit(*supporting[:MAX_EVIDENCE], *against[:MAX_EVIDENCE], count=len(supporting))
    return miss(*against[:MAX_EVIDENCE], reason="every token was already valid when it was used")


def clock_skew(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    """Measure how far a token's issue time (iat, else nbf) is ahead of the proxy's clock.

    A token cannot be issued after it is used, so an iat later than the
    request by more than the leeway means the issuer's and the proxy's
    clocks disagree by at least that much.
    """
    tokens = _distinct_tokens(facts)
    if not tokens:
        return unknown("no JWT among the inputs; " + COLLECT_TOKEN)
    dated = [token for token in tokens if (token.issued_at or token.not_before) is not None]
    if not dated:
        return miss(reason="no token among the inputs has an iat or nbf claim to compare "
                           "clocks with")

    leeway = _leeway(args)
    moments = _jwt_failure_moments(facts)
    supporting: list[Evidence] = []
    against: list[Evidence] = []
    for token in dated:
        reference = _reference(token, moments, earliest=False)
        if reference is None:
            continue
        issued = token.issued_at or token.not_before
        claim = "iat" if token.issued_at is not None else "nbf"
        skew = issued - reference.at
        if skew > leeway:
            supporting.append(_token_evidence(
                token, f"clock skew of {_format_span(skew)} ({int(skew.total_seconds())} s): "
                       f"{claim} {_format_time(issued)} is after {reference.description} at "
                       f"{_format_time(reference.at)}, so the issuer's clock is ahead of the "
                       f"proxy's (or the proxy's is behind) by more than the "
                       f"{int(leeway.total_seconds())} s leeway"))
        else:
            against.append(_token_evidence(
                token, f"{claim} {_format_time(issued)} is not after {reference.description} at "
                       f"{_format_time(reference.at)} beyond the leeway", False))

    if not supporting and not against:
        return unknown("no time of the failing requests to compare the tokens' iat with; "
                       + COLLECT_REQUEST_TIME)
    if supporting:
        return hit(*supporting[:MAX_EVIDENCE], count=len(supporting))
    return miss(*against[:MAX_EVIDENCE], reason="no token was issued after the time it was used")


@dataclass(frozen=True)
class _JwtRule:
    """One configured issuer: a RequestAuthentication jwtRule or an Envoy jwt_authn provider."""

    issuer: str | None
    audiences: tuple[str, ...]
    evidence: Evidence
    owner: str


def _jwt_rules(facts: FactSet) -> list[_JwtRule]:
    rules = []
    for resource in facts.of(IstioResource):
        if resource.kind != "RequestAuthentication":
            continue
        for index, rule in enumerate(resource.spec.get("jwtRules") or []):
            if not isinstance(rule, dict):
                continue
            line = resource.line_of(f"jwtRules.{index}.issuer")
            issuer = rule.get("issuer") if isinstance(rule.get("issuer"), str) else None
            audiences = tuple(str(item) for item in rule.get("audiences") or ())
            text = resource.text_of(line) or f"issuer: {issuer}"
            rules.append(_JwtRule(issuer, audiences,
                                  Evidence(resource.source, line, text.strip(),
                                           note=f"{resource.ref} jwtRules[{index}]"),
                                  resource.ref))
    for provider in facts.of(JwtProvider):
        rules.append(_JwtRule(provider.issuer, provider.audiences,
                              Evidence(provider.source, provider.line, provider.text,
                                       note=f"jwt_authn provider {provider.name}"),
                              f"jwt_authn provider {provider.name}"))
    return rules


def _issuer_hint(issuer: str, configured: Iterable[str]) -> str:
    """Say how a token issuer differs from the nearest configured one, for the evidence note."""
    def core(value: str) -> str:
        return value.split("://", 1)[-1].rstrip("/").split("/", 1)[-1]

    for candidate in configured:
        if candidate.rstrip("/") == issuer.rstrip("/"):
            return f"; it differs from {candidate!r} only by a trailing '/'"
        if core(candidate) == core(issuer):
            return f"; same path as {candidate!r} but another scheme, host or port"
    return ""


def token_issuer_not_configured(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    rules = _jwt_rules(facts)
    if not rules:
        return unknown("no RequestAuthentication or jwt_authn provider among the inputs; "
                       + COLLECT_JWT_CONFIG)
    tokens = [token for token in _distinct_tokens(facts) if token.issuer is not None]
    if not tokens:
        return unknown("no JWT with an iss claim among the inputs; " + COLLECT_TOKEN)

    configured = {rule.issuer for rule in rules if rule.issuer}
    unmatched = [token for token in tokens if token.issuer not in configured]
    if not unmatched:
        return miss(*(_token_evidence(token, f"iss {token.issuer!r} is configured", False)
                      for token in tokens[:MAX_EVIDENCE]),
                    reason="every token's issuer is configured")

    evidence = [_token_evidence(token, f"iss {token.issuer!r} is not a configured issuer"
                                + _issuer_hint(token.issuer, configured))
                for token in unmatched[:MAX_EVIDENCE]]
    evidence += [_with_note(rule.evidence, f"{rule.evidence.note}: configured issuer "
                                           f"{rule.issuer!r}")
                 for rule in rules[:MAX_EVIDENCE]]
    return hit(*evidence, count=len(unmatched))


def token_kid_not_in_jwks(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    key_sets = facts.of(Jwks)
    if not key_sets:
        return unknown("no JWKS among the inputs; " + COLLECT_JWKS)
    tokens = [token for token in _distinct_tokens(facts) if token.kid is not None]
    if not tokens:
        return unknown("no JWT with a kid header among the inputs (a file of decoded claims "
                       "has no header); " + COLLECT_TOKEN)

    supporting: list[Evidence] = []
    against: list[Evidence] = []
    compared = 0
    for token in tokens:
        applicable = [jwks for jwks in key_sets if jwks.issuer == token.issuer]
        if not applicable:
            applicable = [jwks for jwks in key_sets if jwks.issuer is None]
        if not applicable:
            continue
        compared += 1
        kids = {kid for jwks in applicable for kid in jwks.kids}
        if token.kid in kids:
            against.append(_token_evidence(token, f"kid {token.kid!r} is in the JWKS", False))
            continue
        supporting.append(_token_evidence(
            token, f"kid {token.kid!r} is not among the JWKS key ids "
                   + ", ".join(repr(kid) for kid in sorted(kid or "-" for kid in kids))))
        supporting += [Evidence(jwks.source, jwks.line, _jwks_text(jwks), note="the JWKS compared")
                       for jwks in applicable[:2]]

    if not compared:
        return unknown("no JWKS for the tokens' issuers among the inputs; " + COLLECT_JWKS)
    if supporting:
        return hit(*supporting[:MAX_EVIDENCE * 2], count=len(supporting))
    return miss(*against[:MAX_EVIDENCE], reason="every token's kid is in its issuer's JWKS")


def _jwks_text(jwks: Jwks) -> str:
    owner = f"provider {jwks.provider} " if jwks.provider else ""
    return f"{owner}JWKS key ids: " + ", ".join(kid or "-" for kid in jwks.kids)


def token_audience_not_allowed(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    rules = _jwt_rules(facts)
    if not rules:
        return unknown("no RequestAuthentication or jwt_authn provider among the inputs; "
                       + COLLECT_JWT_CONFIG)
    tokens = [token for token in _distinct_tokens(facts) if token.issuer is not None]
    if not tokens:
        return unknown("no JWT with an iss claim among the inputs; " + COLLECT_TOKEN)

    supporting: list[Evidence] = []
    against: list[Evidence] = []
    for token in tokens:
        for rule in rules:
            if rule.issuer != token.issuer:
                continue
            if not rule.audiences:
                against.append(_with_note(rule.evidence, f"{rule.owner} restricts no audience",
                                          supports=False))
                continue
            if set(token.audiences) & set(rule.audiences):
                against.append(_token_evidence(token, f"aud {list(token.audiences)} is allowed by "
                                                      f"{rule.owner}", False))
                continue
            supporting.append(_token_evidence(
                token, f"aud {list(token.audiences)} has none of {list(rule.audiences)}"))
            supporting.append(_with_note(rule.evidence, f"{rule.owner} allows only "
                                                        f"{list(rule.audiences)}"))

    if supporting:
        return hit(*supporting[:MAX_EVIDENCE * 2], count=len(supporting) // 2)
    if not against:
        return miss(reason="no configured rule has the tokens' issuers, so audiences were not "
                           "checked (see jwt-issuer-not-configured)")
    return miss(*against[:MAX_EVIDENCE], reason="every token's audience is allowed")


def jwks_cluster_without_tls(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    providers = facts.of(JwtProvider)
    if not providers:
        return unknown("no Envoy jwt_authn configuration among the inputs; " + COLLECT_ENVOY_JWT)
    remote = [provider for provider in providers if provider.jwks_uri]
    if not remote:
        return miss(reason="no jwt_authn provider fetches a remote JWKS (all use local_jwks)")

    supporting: list[Evidence] = []
    against: list[Evidence] = []
    undecided: list[str] = []
    for provider in remote:
        uri_evidence = Evidence(provider.source, provider.jwks_uri_line or provider.line,
                                provider.jwks_uri_text or provider.text,
                                note=f"provider {provider.name} fetches {provider.jwks_uri}")
        if not provider.jwks_uri.lower().startswith("https://"):
            against.append(_with_note(uri_evidence, "the jwks_uri is plain http", supports=False))
        elif provider.jwks_cluster_has_tls is None:
            undecided.append(provider.jwks_cluster or "(no cluster named)")
        elif provider.jwks_cluster_has_tls:
            against.append(_with_note(uri_evidence, f"cluster {provider.jwks_cluster} has a TLS "
                                                    "transport socket", supports=False))
        else:
            supporting.append(uri_evidence)
            supporting.append(Evidence(provider.source, provider.jwks_cluster_line,
                                       provider.jwks_cluster_text or f"name: {provider.jwks_cluster}",
                                       note=f"cluster {provider.jwks_cluster} has no "
                                            "transport_socket, so Envoy speaks plaintext HTTP "
                                            "to the https endpoint"))

    if supporting:
        return hit(*supporting, count=len(supporting) // 2)
    if undecided:
        return unknown("the cluster used to fetch the JWKS is not among the inputs ("
                       + ", ".join(undecided) + "); collect it with `istioctl proxy-config "
                       "cluster POD --fqdn CLUSTER -o yaml`")
    return miss(*against, reason="every https JWKS is fetched through a TLS cluster")


# --- RBAC with and without tokens ---------------------------------------------


def _rbac_denials(facts: FactSet) -> list[SignatureMatch]:
    return [match for match in facts.of(SignatureMatch)
            if match.signature_id == "envoy-rbac-access-denied"]


def _sources_with_tokens(facts: FactSet) -> set[str]:
    return {token.source for token in facts.of(JwtToken) if token.origin == "bearer"}


def rbac_denied_without_token(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    denials = _rbac_denials(facts)
    if not denials:
        if any("rbac_access_denied" in (entry.response_code_details or "")
               for entry in facts.of(AccessLogEntry)):
            return unknown("the access log shows RBAC denials but not whether the requests "
                           "carried a token; reproduce one with `curl -sv URL` and add its output")
        return miss(reason="no RBAC denial with the request that caused it among the inputs")

    with_tokens = _sources_with_tokens(facts)
    without = [match for match in denials if match.source not in with_tokens]
    if not without:
        return miss(*(Evidence(match.source, match.line, match.text, False,
                               "this request carried a bearer token")
                      for match in denials[:MAX_EVIDENCE]),
                    reason="every denied request shown carried a token")
    return hit(*(Evidence(match.source, match.line, match.text,
                          note="no bearer token in this request")
                 for match in without[:MAX_EVIDENCE]), count=len(without))


def rbac_denied_with_token(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    denials = _rbac_denials(facts)
    if not denials:
        return miss(reason="no RBAC denial with the request that caused it among the inputs")
    with_tokens = _sources_with_tokens(facts)
    if all(match.source in with_tokens for match in denials):
        return hit(*(Evidence(match.source, match.line, match.text,
                              note="this denied request carried a bearer token")
                     for match in denials[:MAX_EVIDENCE]), count=len(denials))
    return miss(reason="some denied requests carried no token")


def request_principals_required(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    policies = [resource for resource in facts.of(IstioResource)
                if resource.kind == "AuthorizationPolicy"]
    if not policies:
        return unknown("no AuthorizationPolicy among the inputs; " + COLLECT_AUTHORIZATION)

    evidence = []
    for policy in policies:
        for path in _request_principal_paths(policy.spec):
            line = policy.line_of(path)
            evidence.append(Evidence(policy.source, line, policy.text_of(line).strip() or path,
                                     note=f"{policy.ref} {path} needs a verified JWT"))
    if not evidence:
        return miss(reason="no AuthorizationPolicy uses requestPrincipals or request.auth claims")
    return hit(*evidence[:MAX_EVIDENCE], count=len(evidence))


def _request_principal_paths(spec: dict[str, Any]) -> list[str]:
    paths = []
    for rule_index, rule in enumerate(spec.get("rules") or []):
        if not isinstance(rule, dict):
            continue
        for from_index, source in enumerate(rule.get("from") or []):
            inner = source.get("source") if isinstance(source, dict) else None
            if not isinstance(inner, dict):
                continue
            for key in ("requestPrincipals", "notRequestPrincipals"):
                if inner.get(key):
                    paths.append(f"rules.{rule_index}.from.{from_index}.source.{key}")
        for when_index, condition in enumerate(rule.get("when") or []):
            if isinstance(condition, dict) and str(condition.get("key", "")).startswith("request.auth."):
                paths.append(f"rules.{rule_index}.when.{when_index}.key")
    return paths


# --- TLS ----------------------------------------------------------------------


def _has_tls_inputs(facts: FactSet) -> bool:
    return bool(facts.of(TlsHandshake) or facts.of(AccessLogEntry) or facts.of(SignatureMatch))


def _tls_reason_evidence(facts: FactSet, reason: _TlsReason) -> tuple[list[Evidence], int]:
    evidence: list[Evidence] = []
    count = 0

    for handshake in facts.of(TlsHandshake):
        notes = []
        if handshake.verify_code in reason.verify_codes:
            notes.append(f"verify return code {handshake.verify_code} ({handshake.verify_error})")
        for failure in handshake.verify_failures:
            if failure.code in reason.verify_codes and not notes:
                notes.append(f"depth {failure.depth} ({failure.subject}): {failure.message}")
        for alert in handshake.alerts:
            if any(word in alert for word in reason.alert_words):
                notes.append(f"alert: {alert}")
        if notes:
            count += 1
            evidence.append(Evidence(handshake.source, handshake.line, handshake.text,
                                     note="; ".join(notes)))

    for entry in facts.of(AccessLogEntry):
        text = " ".join(filter(None, (entry.upstream_transport_failure_reason,
                                      entry.response_code_details)))
        if text and any(word in text for word in reason.envoy_words):
            count += 1
            if len(evidence) < MAX_EVIDENCE * 2:
                evidence.append(Evidence(entry.source, entry.line, entry.text,
                                         note="upstream transport failure reason"))

    for match in facts.of(SignatureMatch):
        if match.signature_id in reason.signatures:
            count += 1
            if len(evidence) < MAX_EVIDENCE * 2:
                evidence.append(Evidence(match.source, match.line, match.text,
                                         note=f"signature {match.signature_id}"))
    return evidence, count


def tls_failure(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    name = str(args["reason"])
    reason = TLS_REASONS.get(name)
    if reason is None:
        return unknown(f"unknown TLS failure reason {name!r}; expected one of "
                       + ", ".join(TLS_REASONS))
    if not _has_tls_inputs(facts):
        return unknown("no s_client output, access log or proxy log among the inputs; collect "
                       "`openssl s_client -connect HOST:PORT -servername NAME -showcerts` or "
                       "`kubectl logs POD -c istio-proxy`")

    evidence, count = _tls_reason_evidence(facts, reason)
    if not count:
        return miss(reason=f"no TLS failure with reason {name} in the inputs")
    return hit(*evidence[:MAX_EVIDENCE * 2], count=count)


# --- certificates -------------------------------------------------------------


def _certificates(facts: FactSet) -> list[CertificateInfo]:
    """Return every certificate read, once each, standalone ones first."""
    seen: set[tuple[Any, ...]] = set()
    certificates = []
    candidates = list(facts.of(CertificateInfo))
    for handshake in facts.of(TlsHandshake):
        candidates.extend(handshake.peer_certificates)
    for certificate in candidates:
        key = (certificate.fingerprint_sha256 or certificate.serial, certificate.subject,
               certificate.issuer, certificate.not_after, certificate.source)
        if key not in seen:
            seen.add(key)
            certificates.append(certificate)
    return certificates


def _certificate_reference(facts: FactSet) -> tuple[datetime, str, Evidence | None]:
    moments = _tls_failure_moments(facts)
    if moments:
        first = moments[0]
        return first.at, f"the first failure ({first.description}) at {_format_time(first.at)}", \
            first.evidence
    # NOTE: with no failure time in the inputs, validity is judged against the
    # time of this diagnosis, which is right for live collection only.
    now = datetime.now(timezone.utc)
    return now, f"now ({_format_time(now)}; no failure time among the inputs)", None


def _certificate_evidence(certificate: CertificateInfo, note: str, supports: bool = True) -> Evidence:
    text = certificate.text or f"subject={certificate.subject} notAfter={certificate.not_after}"
    return Evidence(certificate.source, certificate.line, text, supports, note)


def _describe(certificate: CertificateInfo) -> str:
    name = certificate.subject or (f"issued by {certificate.issuer}" if certificate.issuer else
                                   "certificate")
    if certificate.label:
        name += f" ({certificate.label})"
    return name


def _expired_before(certificates: list[CertificateInfo], reference: datetime,
                    reference_text: str) -> tuple[list[Evidence], list[Evidence]]:
    supporting: list[Evidence] = []
    against: list[Evidence] = []
    for certificate in certificates:
        if certificate.not_after is None:
            continue
        if certificate.not_after < reference:
            supporting.append(_certificate_evidence(
                certificate, f"{_describe(certificate)} expired {_format_time(certificate.not_after)}, "
                             f"{_format_span(reference - certificate.not_after)} before "
                             f"{reference_text}"))
        else:
            against.append(_certificate_evidence(
                certificate, f"{_describe(certificate)} valid until "
                             f"{_format_time(certificate.not_after)}", False))
    return supporting, against


def certificate_expired(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    certificates = [cert for cert in _certificates(facts) if cert.not_after is not None]
    if not certificates:
        return unknown("no certificate with a validity period among the inputs; "
                       + COLLECT_CERTIFICATES)

    reference, reference_text, reference_evidence = _certificate_reference(facts)
    supporting, against = _expired_before(certificates, reference, reference_text)
    if not supporting:
        return miss(*against[:MAX_EVIDENCE],
                    reason=f"every certificate read was valid at {reference_text}")
    if reference_evidence is not None:
        supporting.append(_with_note(reference_evidence, "time of the first failure"))
    return hit(*supporting[:MAX_EVIDENCE * 2], count=len(supporting))


def _is_ca(certificate: CertificateInfo) -> bool:
    if certificate.is_ca is not None:
        return certificate.is_ca
    if certificate.self_issued:
        return True
    label = (certificate.label or "").lower()
    return "root" in label or label.startswith("ca") or "-ca" in label or "ca." in label


def ca_certificate_expired(facts: FactSet, args: Mapping[str, Any]) -> CheckResult:
    certificates = [cert for cert in _certificates(facts) if cert.not_after is not None]
    authorities = [cert for cert in certificates if _is_ca(cert)]

    depth_failures = [
        (handshake, failure) for handshake in facts.of(TlsHandshake)
        for failure in handshake.verify_failures
        if failure.code == 10 and failure.depth is not None and failure.depth > 0]
    if not authorities and not depth_failures:
        if not certificates:
            return unknown("no certificate among the inputs; " + COLLECT_CERTIFICATES)
        return unknown("no CA certificate among the inputs (only leaf certificates); collect the "
                       "mesh root: `kubectl get configmap istio-ca-root-cert -n NAMESPACE -o "
                       "jsonpath='{.data.root-cert\\.pem}' | openssl x509 -noout -text`")

    reference, reference_text, reference_evidence = _certificate_reference(facts)
    supporting, against = _expired_before(authorities, reference, reference_text)
    for handshake, failure in depth_failures:
        supporting.append(Evidence(handshake.source, failure.line,
                                   f"depth={failure.depth} {failure.subject}: {failure.message}",
                                   note="a CA in the peer's chain (depth above 0) has expired"))
    if not supporting:
        return miss(*against[:MAX_EVIDENCE], reason=f"every CA certificate read was valid at "
                                                     f"{reference_text}")
    if reference_evidence is not None:
        supporting.append(_with_note(reference_evidence, "time of the first failure"))
    return hit(*supporting[:MAX_EVIDENCE * 2], count=len(supporting))


def _with_note(evidence: Evidence, note: str, supports: bool = True) -> Evidence:
    return Evidence(evidence.source, evidence.line, evidence.text, supports, note)
