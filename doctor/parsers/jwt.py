"""JWTs, JWKS documents and Envoy jwt_authn providers, decoded locally and never verified.

Tokens are found wherever they appear: a bare token, an `Authorization:
Bearer` header, a curl `-H` option, a log line, or a JSON file of decoded
claims. They are decoded with PyJWT without verifying the signature and are
never sent anywhere. A token's text in facts is always masked (signature
removed), so a token cited as evidence cannot be replayed, and personal
claims such as `email` are masked in `claims`.

`parse` reads whole documents of this kind (claims files and JWKS
documents). `scan_tokens` runs on every document, whichever parser claimed
it, and finds tokens, Envoy `jwt_authn` providers and their inline JWKS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import jwt as pyjwt

from doctor.model import Document, ParseProblem, ParseResult
from doctor.parsers.structured import LineDict, key_line, load_documents, node_line
from doctor.redact import (
    SIGNATURE_MASK,
    looks_like_jwt_header,
    mask_personal_claim_values,
    redact_text,
)

logger = logging.getLogger(__name__)

KIND = "jwt"
KIND_JWKS = "jwks"

REGISTERED_TIME_CLAIMS = ("exp", "nbf", "iat")

# A compact JWS, also in the masked form this project writes.
_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_-])(?P<header>e[wy][A-Za-z0-9_-]{4,})\.(?P<payload>e[wy][A-Za-z0-9_-]{4,})\."
    r"(?P<signature>" + re.escape(SIGNATURE_MASK) + r"|[A-Za-z0-9_-]*)"
)
_HTTP_DATE = re.compile(r"^[<\s]*date:\s*(?P<date>.+?)\s*$", re.IGNORECASE)
_HTTP_STATUS = re.compile(r"^[<\s]*HTTP/\d(?:\.\d)?\s+(?P<code>\d{3})\b")


@dataclass(frozen=True)
class JwtToken:
    """One JWT as found in an input, decoded without verification.

    `text` is the redacted line the token was found on (the token itself
    masked). `origin` names where it was: "bearer" (an Authorization header
    or curl -H), "text" (anywhere else) or "claims" (a JSON file of decoded
    claims, where `alg` and `kid` are unknown). `fingerprint` identifies the
    token by its header and claims, so the masked and unmasked forms of one
    token compare equal. `observed_at` is the `Date` header of the HTTP
    response that follows the token in a curl transcript: the clock of the
    server that judged it. Times are aware UTC datetimes.
    """

    source: str
    line: int | None
    text: str
    alg: str | None
    kid: str | None
    issuer: str | None
    audiences: tuple[str, ...]
    subject: str | None
    expires_at: datetime | None
    not_before: datetime | None
    issued_at: datetime | None
    claims: dict[str, Any]
    origin: str = "text"
    fingerprint: str = ""
    observed_at: datetime | None = None
    response_code: int | None = None


@dataclass(frozen=True)
class Jwks:
    """The key ids of one JWKS: a JWKS document, or an Envoy provider's `local_jwks`.

    `issuer` and `provider` are set when the JWKS belongs to a jwt_authn
    provider whose configuration was read.
    """

    source: str
    line: int | None
    kids: tuple[str | None, ...]
    algs: tuple[str | None, ...]
    origin: str  # "jwks-document" or "envoy-local-jwks"
    issuer: str | None = None
    provider: str | None = None


@dataclass(frozen=True)
class JwtProvider:
    """One Envoy jwt_authn provider as a config dump or bootstrap shows it.

    `jwks_cluster_has_tls` is True or False when the cluster that fetches
    `jwks_uri` is defined in the same input, else None. The `*_text` fields
    are the source lines of the `uri:` key and of the cluster, for citing.
    """

    source: str
    line: int | None
    text: str
    name: str
    issuer: str | None
    audiences: tuple[str, ...]
    jwks_uri: str | None
    jwks_cluster: str | None
    jwks_cluster_line: int | None
    jwks_cluster_has_tls: bool | None
    local_jwks_kids: tuple[str | None, ...] | None = None
    jwks_uri_line: int | None = None
    jwks_uri_text: str = ""
    jwks_cluster_text: str = ""


# --- whole documents: claims files and JWKS documents -------------------------


def sniff(doc: Document) -> bool:
    """Accept a JSON document of decoded JWT claims or a JWKS document."""
    stripped = doc.text.lstrip()
    if not stripped.startswith("{"):
        return False
    try:
        data = json.loads(doc.text)
    except ValueError:
        return False
    return _is_jwks(data) or _claims_of(data) is not None


def parse(doc: Document) -> ParseResult:
    try:
        data = json.loads(doc.text)
    except ValueError as error:
        return ParseResult(KIND, problems=[ParseProblem(doc.source, None,
                                                        f"not valid JSON: {error}")])

    if _is_jwks(data):
        result = ParseResult(KIND_JWKS)
        result.facts.append(_jwks_fact(data, doc.source, 1, "jwks-document"))
        return result

    result = ParseResult(KIND)
    claims_and_header = _claims_of(data)
    if claims_and_header is None:
        result.problems.append(ParseProblem(doc.source, 1, "no JWT claims (iss or exp) found"))
        return result
    claims, header = claims_and_header
    line = _line_of_key(doc.text, "iss") or _line_of_key(doc.text, "exp") or 1
    text = redact_text(doc.lines[line - 1]) if doc.lines else ""
    token = _token_fact(doc.source, line, text, header, claims, "claims", result.problems)
    if token is not None:
        result.facts.append(token)
    return result


def _is_jwks(data: Any) -> bool:
    keys = data.get("keys") if isinstance(data, dict) else None
    return isinstance(keys, list) and bool(keys) and all(
        isinstance(key, dict) and "kty" in key for key in keys)


def _claims_of(data: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Return (claims, header) of a decoded-claims document, else None.

    Accepts a claims object, or {"header": {...}, "payload": {...}} as JWT
    debuggers print it. A Kubernetes or Envoy object is not a claims file.
    """
    if not isinstance(data, dict) or {"apiVersion", "kind", "@type", "keys"} & set(data):
        return None
    header: dict[str, Any] = {}
    if isinstance(data.get("payload"), dict):
        header = data.get("header") if isinstance(data.get("header"), dict) else {}
        data = data["payload"]
    if isinstance(data.get("iss"), str) or isinstance(data.get("exp"), (int, float)):
        return data, header
    return None


def _line_of_key(text: str, key: str) -> int | None:
    match = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    if match is None:
        return None
    return text.count("\n", 0, match.start()) + 1


# --- tokens and providers in any document --------------------------------------


def scan_tokens(doc: Document) -> ParseResult:
    """Find JWTs, jwt_authn providers and inline JWKS anywhere in `doc`."""
    result = ParseResult(KIND)
    lines = doc.lines

    for number, line in enumerate(lines, start=1):
        for match in _TOKEN.finditer(line):
            if not looks_like_jwt_header(match["header"]):
                continue
            token = _token_from_match(doc.source, number, line, match, result.problems)
            if token is None:
                continue
            observed_at, code = _response_after(lines, number)
            result.facts.append(_with_response(token, observed_at, code))

    if "providers" in doc.text and ("local_jwks" in doc.text or "remote_jwks" in doc.text):
        result.facts.extend(_providers(doc, result.problems))
    return result


def _token_from_match(source: str, number: int, line: str, match: re.Match[str],
                      problems: list[ParseProblem]) -> JwtToken | None:
    signature = match["signature"]
    # PyJWT decodes the signature segment too, so a masked one is replaced by an empty one.
    compact = f"{match['header']}.{match['payload']}.{'' if signature == SIGNATURE_MASK else signature}"
    try:
        header = pyjwt.get_unverified_header(compact)
        claims = pyjwt.decode(compact, options={
            "verify_signature": False, "verify_exp": False, "verify_nbf": False,
            "verify_iat": False, "verify_aud": False, "verify_iss": False})
    except pyjwt.PyJWTError as error:
        problems.append(ParseProblem(source, number,
                                     f"a JWT-like value could not be decoded: {error}"))
        return None

    before = line[:match.start()]
    origin = "bearer" if re.search(r"bearer\s+$", before, re.IGNORECASE) else "text"
    return _token_fact(source, number, redact_text(line), header, claims, origin, problems)


def _token_fact(source: str, line: int, text: str, header: dict[str, Any],
                claims: dict[str, Any], origin: str,
                problems: list[ParseProblem]) -> JwtToken | None:
    times: dict[str, datetime | None] = {}
    for claim in REGISTERED_TIME_CLAIMS:
        value = claims.get(claim)
        if value is None:
            times[claim] = None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            times[claim] = _from_epoch(value)
        else:
            problems.append(ParseProblem(source, line,
                                         f"JWT claim {claim!r} is not a number of seconds: {value!r}"))
            times[claim] = None

    audience = claims.get("aud")
    if isinstance(audience, str):
        audiences: tuple[str, ...] = (audience,)
    elif isinstance(audience, list):
        audiences = tuple(str(item) for item in audience)
    else:
        audiences = ()

    return JwtToken(
        source=source,
        line=line,
        text=text,
        alg=_text_or_none(header.get("alg")),
        kid=_text_or_none(header.get("kid")),
        issuer=_text_or_none(claims.get("iss")),
        audiences=audiences,
        subject=_text_or_none(claims.get("sub")),
        expires_at=times["exp"],
        not_before=times["nbf"],
        issued_at=times["iat"],
        claims=mask_personal_claims(claims),
        origin=origin,
        fingerprint=_fingerprint(header, claims),
    )


def mask_personal_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `claims` with the values of personal claims masked."""
    return mask_personal_claim_values(claims)


def _from_epoch(value: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _fingerprint(header: dict[str, Any], claims: dict[str, Any]) -> str:
    # Redaction masks personal claims, so they are masked here too and the
    # redacted and original forms of one token keep one fingerprint.
    canonical = json.dumps([header, mask_personal_claim_values(claims)], sort_keys=True,
                           default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _response_after(lines: list[str], number: int) -> tuple[datetime | None, int | None]:
    """Return the Date header and status of the HTTP response after line `number`, if any.

    curl -i and -v print the response after the command line and the request
    headers. The search stops at a line with another token, so a response is
    tied to the request that precedes it.
    """
    token = _TOKEN.search(lines[number - 1])
    signed_part = token.group(0).rsplit(".", 1)[0] if token else None
    code: int | None = None

    for line in lines[number:]:
        other = _TOKEN.search(line)
        if other is not None and other.group(0).rsplit(".", 1)[0] != signed_part:
            break
        status = _HTTP_STATUS.match(line)
        if status is not None:
            code = int(status["code"])
            continue
        if code is None:
            continue
        date = _HTTP_DATE.match(line)
        if date is not None:
            return _http_date(date["date"]), code
        if not line.lstrip("< ").strip():
            break
    return None, code


def _http_date(value: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _with_response(token: JwtToken, observed_at: datetime | None, code: int | None) -> JwtToken:
    if observed_at is None and code is None:
        return token
    values = dict(token.__dict__)
    values["observed_at"] = observed_at
    values["response_code"] = code
    return JwtToken(**values)


# --- Envoy jwt_authn providers ------------------------------------------------


def _providers(doc: Document, problems: list[ParseProblem]) -> list[Any]:
    documents, errors = load_documents(doc.text)
    if errors and not documents:
        # Free text that mentions providers (a log line) is not a config, so nothing is reported.
        return []

    clusters: dict[str, tuple[int | None, bool]] = {}
    found: list[tuple[str, LineDict]] = []
    for loaded in documents:
        _walk(loaded.data, clusters, found)

    facts: list[Any] = []
    for name, config in found:
        facts.extend(_provider_facts(doc, name, config, clusters, problems))
    return facts


def _walk(value: Any, clusters: dict[str, tuple[int | None, bool]],
          found: list[tuple[str, LineDict]]) -> None:
    if isinstance(value, dict):
        providers = value.get("providers")
        if isinstance(providers, dict):
            for name, config in providers.items():
                if isinstance(config, dict) and ("local_jwks" in config or "remote_jwks" in config
                                                 or "issuer" in config):
                    found.append((str(name), config))
        if _looks_like_cluster(value):
            has_tls = "transport_socket" in value or "tls_context" in value or (
                "transport_socket_matches" in value)
            clusters[str(value["name"])] = (node_line(value), has_tls)
        for item in value.values():
            _walk(item, clusters, found)
    elif isinstance(value, list):
        for item in value:
            _walk(item, clusters, found)


def _looks_like_cluster(value: dict) -> bool:
    if not isinstance(value.get("name"), str):
        return False
    cluster_keys = {"connect_timeout", "load_assignment", "hosts", "lb_policy", "eds_cluster_config"}
    return bool(cluster_keys & set(value)) and "route" not in value and "match" not in value


def _provider_facts(doc: Document, name: str, config: Any,
                    clusters: dict[str, tuple[int | None, bool]],
                    problems: list[ParseProblem]) -> list[Any]:
    line = node_line(config)
    issuer = _text_or_none(config.get("issuer"))
    audiences = tuple(str(item) for item in config.get("audiences") or ())

    jwks_uri = cluster = None
    uri_line: int | None = None
    remote = config.get("remote_jwks")
    if isinstance(remote, dict) and isinstance(remote.get("http_uri"), dict):
        jwks_uri = _text_or_none(remote["http_uri"].get("uri"))
        cluster = _text_or_none(remote["http_uri"].get("cluster"))
        uri_line = key_line(remote["http_uri"], "uri")
    cluster_line, has_tls = clusters.get(cluster, (None, None)) if cluster else (None, None)

    facts: list[Any] = []
    local_kids: tuple[str | None, ...] | None = None
    local = config.get("local_jwks")
    if isinstance(local, dict):
        jwks_fact = _local_jwks_fact(doc, name, issuer, local, problems)
        if jwks_fact is not None:
            local_kids = jwks_fact.kids
            facts.append(jwks_fact)

    facts.insert(0, JwtProvider(doc.source, line, _line_text(doc, line) or name, name, issuer,
                                audiences, jwks_uri, cluster, cluster_line, has_tls, local_kids,
                                uri_line, _line_text(doc, uri_line), _line_text(doc, cluster_line)))
    return facts


def _line_text(doc: Document, line: int | None) -> str:
    lines = doc.lines
    if line is None or not 1 <= line <= len(lines):
        return ""
    return redact_text(lines[line - 1].strip())


def _local_jwks_fact(doc: Document, provider: str, issuer: str | None, local: LineDict,
                     problems: list[ParseProblem]) -> Jwks | None:
    line = key_line(local, "inline_string") or node_line(local)
    inline = local.get("inline_string")
    if inline is None and isinstance(local.get("inline_bytes"), str):
        try:
            inline = base64.b64decode(local["inline_bytes"]).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            inline = None
    if not isinstance(inline, str):
        return None
    try:
        data = json.loads(inline)
    except ValueError as error:
        problems.append(ParseProblem(doc.source, line,
                                     f"local_jwks of provider {provider!r} is not valid JSON: {error}"))
        return None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        problems.append(ParseProblem(doc.source, line,
                                     f"local_jwks of provider {provider!r} has no 'keys' list"))
        return None
    fact = _jwks_fact(data, doc.source, line, "envoy-local-jwks")
    return Jwks(fact.source, fact.line, fact.kids, fact.algs, fact.origin, issuer, provider)


def _jwks_fact(data: dict[str, Any], source: str, line: int | None, origin: str) -> Jwks:
    keys = [key for key in data.get("keys", []) if isinstance(key, dict)]
    kids = tuple(_text_or_none(key.get("kid")) for key in keys)
    algs = tuple(_text_or_none(key.get("alg")) for key in keys)
    return Jwks(source, line, kids, algs, origin)

