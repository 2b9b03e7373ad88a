"""Redaction of secrets in any text that leaves the process: bundles, reports and logs.

`redact_text` masks:

- PEM private keys (the whole body; also base64-encoded PEM as in Secret data);
- `Authorization` and `Proxy-Authorization` credentials (the scheme stays, so
  "Bearer" or "Basic" is still visible), and `Cookie`/`Set-Cookie` values (the
  cookie names stay), in header lines, curl `-H` options, JSON, YAML and
  Envoy's debug header dumps;
- JWT signatures anywhere: header and claims stay readable, so an expired or
  mis-issued token can still be diagnosed from a redacted bundle, but the
  token can no longer be replayed. Personal claims (`PERSONAL_CLAIMS`, and
  any claim whose value is an e-mail address) are masked inside the payload,
  which is re-encoded, so they cannot be decoded from the output either;
- the values under `data` and `stringData` of Kubernetes Secrets in YAML and
  JSON, including the JSON copy kept in the last-applied-configuration
  annotation;
- passwords in URLs (`https://user:password@host`), token or password query
  parameters, and command-line options such as kubectl's `--token`;
- TLS session secrets that `openssl s_client` prints (`Master-Key`,
  `Resumption PSK`), which would let anyone with a capture decrypt it.

Redaction never adds or removes a line, so a line number cited from a
redacted document points at the same line of the original. It is idempotent:
redacting redacted text changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

MASK = "<masked>"
# OpenID Connect standard claims and Azure AD claims that identify a person.
PERSONAL_CLAIMS = frozenset({
    "email", "name", "given_name", "family_name", "middle_name", "nickname",
    "preferred_username", "phone_number", "address", "birthdate", "picture",
    "upn", "unique_name",
})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
SIGNATURE_MASK = "<signature masked>"
PRIVATE_KEY_MASK = "<private key masked>"

_JWT_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9_-])(e[wy][A-Za-z0-9_-]{4,})\.(e[wy][A-Za-z0-9_-]{4,})\.(<signature masked>|[A-Za-z0-9_-]+)"
)

_PEM_PRIVATE_KEY = re.compile(
    r"(-----BEGIN (?P<label>[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----)"
    r"(?P<body>.*?)"
    r"(?P<end>-----END (?P=label)-----|\Z)",
    re.DOTALL,
)
_PEM_BODY_SEPARATOR = re.compile(r"(\\r\\n|\\n|\r?\n)")
_BASE64_PEM = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/]+={0,2}")

# The header name, optionally quoted, then a separator. A comma separates a
# name from its value only in quoted pairs such as Envoy's debug dump
# `'authorization', 'Bearer ...'`, so prose like "authorization, then" is kept.
_SENSITIVE_HEADER = re.compile(
    r"(?<![\w-])(?P<open>[\"']?)(?P<name>proxy-authorization|authorization|set-cookie|cookie)"
    r"(?P<close>[\"']?)"
    r"(?P<sep>\s*:\s*\[?\s*|(?<=[\"'])\s*,\s*|\s*=\s*)"
    r"(?P<vquote>[\"']?)",
    re.IGNORECASE,
)
_AUTH_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9_-]*)(?P<space>\s+)(?P<credential>\S.*)$")

_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+):(?P<password>[^@\s/'\"]+)@", re.I)
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&](?:access_token|refresh_token|id_token|client_secret|password|passwd|api_key)=)"
    r"(?P<value>[^&\s'\"#]+)",
    re.IGNORECASE,
)

_SECRET_OPTION = re.compile(
    r"(?P<head>(?<![\w-])--(?:token|password|client-secret|client_secret)(?:=|[ \t]+)[\"']?)"
    r"(?P<value>[^\s'\"]+)")
_TLS_SESSION_SECRET = re.compile(
    r"^(?P<head>\s*(?:Master-Key|Resumption PSK):[ \t]*)(?P<value>[0-9A-Fa-f]+)[ \t]*$", re.MULTILINE)

_YAML_SECRET_KIND = re.compile(r"^\s*(?:-\s+)?kind:\s*[\"']?Secret[\"']?\s*(?:#.*)?$", re.MULTILINE)
_YAML_KEY_LINE = re.compile(
    r"^(?P<indent>\s*)(?P<dash>-\s+)?(?P<key>\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s#:][^:#]*?)\s*:(?:\s+(?P<value>.*?))?\s*$"
)
_YAML_EMPTY_VALUES = {"", "{}", "null", "~", "[]"}
_YAML_BLOCK_INDICATOR = re.compile(r"^[|>][+-]?\d?(\s+#.*)?$")


def redact_text(text: str) -> str:
    """Return `text` with every secret kind listed above masked and the line count unchanged."""
    text = _mask_private_keys(text)
    if "Secret" in text:
        text = _mask_json_secrets(text)
        text = _mask_yaml_secrets(text)
    text = _mask_sensitive_headers(text)
    text = _JWT_CANDIDATE.sub(_mask_jwt_match, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _QUERY_SECRET.sub(_mask_query_secret, text)
    text = _SECRET_OPTION.sub(_mask_query_secret, text)
    text = _TLS_SESSION_SECRET.sub(lambda m: m["head"] + MASK, text)
    return text


# The steps of `redact_text` by the kind of secret each masks, for `count_redactions`.
def _redaction_steps() -> list[tuple[str, Any]]:
    return [
        ("private key", _mask_private_keys),
        ("Secret data", lambda text: _mask_yaml_secrets(_mask_json_secrets(text))
         if "Secret" in text else text),
        ("Authorization or Cookie header", _mask_sensitive_headers),
        ("JWT signature or personal claim", lambda text: _JWT_CANDIDATE.sub(_mask_jwt_match, text)),
        ("password in URL", lambda text: _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)),
        ("token or password parameter", lambda text: _SECRET_OPTION.sub(
            _mask_query_secret, _QUERY_SECRET.sub(_mask_query_secret, text))),
        ("TLS session secret", lambda text: _TLS_SESSION_SECRET.sub(lambda m: m["head"] + MASK, text)),
    ]


def count_redactions(text: str) -> dict[str, int]:
    """Count the lines of `text` that `redact_text` changes, by kind of secret.

    The steps run in the order `redact_text` runs them, each on the output of
    the one before, so a line is counted once for each kind masked in it.
    """
    counts: dict[str, int] = {}
    for kind, step in _redaction_steps():
        masked = step(text)
        if masked == text:
            continue
        changed = sum(1 for before, after in zip(text.split("\n"), masked.split("\n"))
                      if before != after)
        counts[kind] = changed
        text = masked
    return counts


def mask_jwt(token: str) -> str:
    """Return the compact JWT `token` with its signature replaced by `SIGNATURE_MASK`.

    Header and claims stay, because they carry what a diagnosis needs (issuer,
    audience, expiry, key id) and cannot be replayed without the signature.
    Only personal claims are masked (see `mask_personal_claims`).
    A token without a signature (`alg: none`) is returned unchanged, and text
    that is not a compact JWS is masked whole.
    """
    token = token.strip()
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return MASK
    payload = mask_personal_claims(parts[1])
    if parts[2] in ("", SIGNATURE_MASK):
        return f"{parts[0]}.{payload}.{parts[2]}"
    return f"{parts[0]}.{payload}.{SIGNATURE_MASK}"


def mask_personal_claims(segment: str) -> str:
    """Return the base64url JWT payload `segment` with personal claim values masked.

    A segment that does not decode to a JSON object, or contains no personal
    claim, is returned unchanged, so the original encoding stays byte for byte.
    """
    claims = _decode_json_segment(segment)
    if not isinstance(claims, dict):
        return segment

    masked = mask_personal_claim_values(claims)
    if masked == claims:
        return segment
    encoded = json.dumps(masked, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(encoded).decode("ascii").rstrip("=")


def mask_personal_claim_values(claims: dict[str, Any]) -> dict[str, Any]:
    """Return decoded JWT `claims` with the value of every personal claim replaced by MASK."""
    return {key: (MASK if _is_personal(key, value) else value) for key, value in claims.items()}


def _is_personal(claim: str, value: Any) -> bool:
    if value == MASK:
        return False
    if claim in PERSONAL_CLAIMS:
        return True
    return isinstance(value, str) and _EMAIL.match(value) is not None


def looks_like_jwt_header(segment: str) -> bool:
    """Return whether the base64url `segment` decodes to a JSON object with an `alg`."""
    header = _decode_json_segment(segment)
    return isinstance(header, dict) and "alg" in header


def _decode_json_segment(segment: str) -> Any:
    """Decode a base64url JWT segment as JSON, or return None when it is not base64url JSON."""
    decoded = _b64url_decode(segment)
    if decoded is None:
        return None
    try:
        return json.loads(decoded)
    except (UnicodeDecodeError, ValueError):
        return None


def _b64url_decode(segment: str) -> bytes | None:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        return None


def _mask_jwt_match(match: re.Match[str]) -> str:
    if not looks_like_jwt_header(match.group(1)):
        return match.group(0)
    return f"{match.group(1)}.{mask_personal_claims(match.group(2))}.{SIGNATURE_MASK}"


def _mask_private_keys(text: str) -> str:
    text = _PEM_PRIVATE_KEY.sub(_mask_pem_match, text)
    if "LS0tLS1CRUdJTi" in text:
        text = _BASE64_PEM.sub(_mask_base64_pem, text)
    return text


def _mask_pem_match(match: re.Match[str]) -> str:
    pieces = _PEM_BODY_SEPARATOR.split(match["body"])
    masked = []
    for index, piece in enumerate(pieces):
        is_separator = index % 2 == 1
        if is_separator or not piece.strip():
            masked.append(piece)
        else:
            masked.append(PRIVATE_KEY_MASK)
    return match.group(1) + "".join(masked) + match["end"]


def _mask_base64_pem(match: re.Match[str]) -> str:
    decoded = _b64url_decode(match.group(0).replace("+", "-").replace("/", "_"))
    if decoded is None or b"PRIVATE KEY" not in decoded:
        return match.group(0)
    return PRIVATE_KEY_MASK


def _mask_query_secret(match: re.Match[str]) -> str:
    if match["value"] == MASK:
        return match.group(0)
    return match["head"] + MASK


# --- Authorization and cookie headers ---------------------------------------


def _mask_sensitive_headers(text: str) -> str:
    pieces: list[str] = []
    position = 0
    for match in _SENSITIVE_HEADER.finditer(text):
        if match.start() < position:
            continue
        value_start = match.end()
        value_end = _header_value_end(text, value_start, match["vquote"] or match["open"])
        value = text[value_start:value_end]
        pieces.append(text[position:value_start])
        pieces.append(_mask_header_value(match["name"].lower(), value))
        position = value_end
    pieces.append(text[position:])
    return "".join(pieces)


def _header_value_end(text: str, start: int, quote: str) -> int:
    line_end = text.find("\n", start)
    if line_end == -1:
        line_end = len(text)
    if not quote:
        return line_end

    index = start
    while index < line_end:
        character = text[index]
        if character == "\\":
            index += 2
            continue
        if character == quote:
            return index
        index += 1
    return line_end


def _mask_header_value(name: str, value: str) -> str:
    stripped = value.strip()
    if not stripped or stripped.startswith("$") or stripped in (MASK, "-"):
        return value
    if name in ("authorization", "proxy-authorization"):
        return _mask_credentials(value)
    if name == "cookie":
        return _mask_cookie_pairs(value, every_pair=True)
    return _mask_cookie_pairs(value, every_pair=False)


def _mask_credentials(value: str) -> str:
    leading = value[: len(value) - len(value.lstrip())]
    trailing = value[len(value.rstrip()):]
    match = _AUTH_SCHEME.match(value.strip())
    if match is None:
        return leading + _mask_credential(value.strip()) + trailing
    credential = match["credential"]
    return leading + match["scheme"] + match["space"] + _mask_credential(credential) + trailing


def _mask_credential(credential: str) -> str:
    if credential.startswith("$") or credential == MASK:
        return credential
    parts = credential.split(".")
    if len(parts) == 3 and looks_like_jwt_header(parts[0]):
        return mask_jwt(credential)
    return MASK


def _mask_cookie_pairs(value: str, every_pair: bool) -> str:
    pairs = value.split(";")
    masked = []
    for index, pair in enumerate(pairs):
        name, equals, cookie_value = pair.partition("=")
        if equals and cookie_value.strip() and (every_pair or index == 0):
            masked.append(f"{name}={MASK}")
        else:
            masked.append(pair)
    return ";".join(masked)


# --- Kubernetes Secret data in JSON -----------------------------------------

_JSON_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[{}\[\]:,]')


@dataclass
class _JsonFrame:
    """An object or array being scanned; objects record their members' spans."""

    is_object: bool
    state: str = "key"  # "key", "colon", "value" or "done" (objects only)
    key: str | None = None
    strings: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    children: dict[str, "_JsonFrame"] = field(default_factory=dict)


def _mask_json_secrets(text: str) -> str:
    """Mask string values under `data`/`stringData` of every JSON object whose kind is Secret.

    The scan is token based rather than a full parse, so JSON embedded in logs
    or in YAML block scalars is found too, and formatting stays as it was.
    """
    replacements: list[tuple[int, int, str]] = []
    stack: list[_JsonFrame] = []

    for token in _JSON_TOKEN.finditer(text):
        lexeme = token.group(0)
        top = stack[-1] if stack else None
        if lexeme in "{[":
            stack.append(_JsonFrame(is_object=lexeme == "{"))
        elif lexeme in "}]":
            if top is None or top.is_object != (lexeme == "}"):
                stack.clear()
                continue
            closed = stack.pop()
            if closed.is_object:
                replacements.extend(_secret_replacements(closed))
            if stack:
                _attach_child(stack[-1], closed)
        elif lexeme == ":":
            if top is not None and top.is_object and top.state == "colon":
                top.state = "value"
        elif lexeme == ",":
            if top is not None and top.is_object:
                top.state = "key"
                top.key = None
        else:
            _take_string(top, token.start(), token.end(), lexeme, replacements)

    return _apply_replacements(text, replacements)


def _take_string(frame: _JsonFrame | None, start: int, end: int, lexeme: str,
                 replacements: list[tuple[int, int, str]]) -> None:
    try:
        value = json.loads(lexeme)
    except ValueError:
        return

    if value.lstrip().startswith("{") and "Secret" in value:
        nested = redact_text(value)
        if nested != value:
            replacements.append((start, end, json.dumps(nested)))
    if frame is None:
        return
    if not frame.is_object:
        return
    if frame.state == "key":
        frame.key = value
        frame.state = "colon"
    elif frame.state == "value" and frame.key is not None:
        frame.strings[frame.key] = (start, end, value)
        frame.state = "done"


def _attach_child(parent: _JsonFrame, child: _JsonFrame) -> None:
    if parent.is_object and parent.state == "value" and parent.key is not None:
        parent.children[parent.key] = child
        parent.state = "done"


def _secret_replacements(frame: _JsonFrame) -> list[tuple[int, int, str]]:
    kind = frame.strings.get("kind")
    if kind is None or kind[2] != "Secret":
        return []

    replacements = []
    for key in ("data", "stringData"):
        child = frame.children.get(key)
        if child is None or not child.is_object:
            continue
        for start, end, value in child.strings.values():
            if value != MASK:
                replacements.append((start, end, json.dumps(MASK)))
    return replacements


def _apply_replacements(text: str, replacements: list[tuple[int, int, str]]) -> str:
    if not replacements:
        return text
    pieces = []
    position = 0
    for start, end, new in sorted(replacements):
        if start < position:
            continue
        pieces.append(text[position:start])
        pieces.append(new)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


# --- Kubernetes Secret data in YAML -----------------------------------------


@dataclass(frozen=True)
class _YamlLine:
    indent: int  # column of the key, after any "- " list marker
    start: int  # column of the first non-space character (the dash, if any); -1 for "---"
    key: str | None
    value: str | None
    colon: int = -1  # column of the colon after the key


def _mask_yaml_secrets(text: str) -> str:
    """Mask values under `data:`/`stringData:` of YAML mappings that also contain `kind: Secret`."""
    if not _YAML_SECRET_KIND.search(text):
        return text

    lines = text.split("\n")
    parsed = [_parse_yaml_line(line) for line in lines]
    for index, info in enumerate(parsed):
        if info is None or info.key not in ("data", "stringData"):
            continue
        if not _mapping_has_secret_kind(parsed, index):
            continue
        _mask_yaml_block(lines, parsed, index)
    return "\n".join(lines)


def _parse_yaml_line(line: str) -> _YamlLine | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    if stripped.startswith("---") or stripped == "...":
        return _YamlLine(-1, -1, None, None)
    start = len(line) - len(line.lstrip(" "))
    match = _YAML_KEY_LINE.match(line)
    if match is None:
        return _YamlLine(start, start, None, stripped)
    indent = start + (len(match["dash"]) if match["dash"] else 0)
    colon = line.index(":", match.end("key"))
    return _YamlLine(indent, start, match["key"].strip("\"'"), match["value"] or "", colon)


def _mapping_has_secret_kind(parsed: list[_YamlLine | None], index: int) -> bool:
    column = parsed[index].indent
    for info in _siblings(parsed, index, column):
        if info.key == "kind" and (info.value or "").strip("\"' ").split(" #")[0] == "Secret":
            return True
    return False


def _siblings(parsed: list[_YamlLine | None], index: int, column: int) -> list[_YamlLine]:
    siblings = []

    upward = index
    while upward >= 0:
        info = parsed[upward]
        if info is not None:
            if info.indent == column and info.key is not None:
                siblings.append(info)
            if info.start < column:
                break
        upward -= 1

    downward = index + 1
    while downward < len(parsed):
        info = parsed[downward]
        if info is not None:
            if info.start < column:
                break
            if info.indent == column and info.key is not None:
                siblings.append(info)
        downward += 1
    return siblings


def _mask_yaml_block(lines: list[str], parsed: list[_YamlLine | None], index: int) -> None:
    header = parsed[index]
    inline_value = (header.value or "").strip()
    if inline_value not in _YAML_EMPTY_VALUES and not _YAML_BLOCK_INDICATOR.match(inline_value):
        lines[index] = lines[index][: header.colon + 1] + " " + MASK
        return

    child_column = None
    row = index + 1
    while row < len(lines):
        info = parsed[row]
        if info is None:
            row += 1
            continue
        if info.start <= header.indent:
            break
        if child_column is None:
            child_column = info.indent
        lines[row] = _mask_yaml_child(lines[row], info, child_column)
        row += 1


def _mask_yaml_child(line: str, info: _YamlLine, child_column: int) -> str:
    if info.indent == child_column and info.key is not None:
        value = (info.value or "").strip()
        if value in _YAML_EMPTY_VALUES or value == MASK:
            return line
        if _YAML_BLOCK_INDICATOR.match(value):
            return line
        return line[: info.colon + 1] + " " + MASK
    if line.strip() == MASK:
        return line
    return " " * info.start + MASK


def redact_values(value: Any) -> Any:
    """Return a copy of JSON-like data with `redact_text` applied to every string in it."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_values(item) for item in value]
    return value
