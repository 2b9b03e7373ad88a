"""TLS evidence: `openssl s_client` transcripts, `openssl x509 -text` output and PEM certificates.

A document may hold several of these at once (a terminal capture with a
command, its output and another command). The parser reads every part it
recognises:

- each `openssl s_client` run becomes a `TlsHandshake`: target, verify
  result, the `depth=` verify failures, alerts and other OpenSSL errors,
  protocol and cipher, and the peer's chain;
- each `openssl x509 -text` block becomes a `CertificateInfo`, partial output
  included (fields it does not show are None);
- each PEM certificate (also base64-encoded PEM, as in Secret data) is read
  with the cryptography library.

Names are kept in OpenSSL's order with `=` unspaced ("O=cluster.local,
CN=Mesh Root CA"), so a name from `x509 -text`, from s_client and from a
PEM file compare equal.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtensionOID

from doctor.model import Document, ParseProblem, ParseResult
from doctor.redact import redact_text

logger = logging.getLogger(__name__)

KIND = "tls"

_PEM_BLOCK = re.compile(
    r"-----BEGIN CERTIFICATE-----[ \t]*\r?\n(?P<body>(?:[ \t]*[A-Za-z0-9+/=]+[ \t]*\r?\n)+?)"
    r"[ \t]*-----END CERTIFICATE-----")
_BASE64_PEM = re.compile(r"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t[A-Za-z0-9+/=]+")
_COMMAND = re.compile(r"^\s*(?:\S*[$#%>]\s+)(?P<command>.*\S)")
_S_CLIENT_COMMAND = re.compile(r"\bs_client\b")
_CONNECT_ARG = re.compile(r"-connect\s+(?P<target>\S+)")
_CONNECTED = re.compile(r"^CONNECTED\(")
_DEPTH = re.compile(r"^depth=(?P<depth>\d+)\s*(?P<subject>.*)$")
_VERIFY_ERROR = re.compile(r"^verify error:num=(?P<code>\d+):(?P<message>.*)$")
_OPENSSL_ERROR = re.compile(
    r"(?:^|:)error:[0-9A-Fa-f]+:SSL routines:(?:[A-Za-z0-9_]*:)?(?P<reason>[^:]+):")
_ALERT_NUMBER = re.compile(r"SSL alert number (?P<number>\d+)")
_CHAIN_SUBJECT = re.compile(r"^\s*(?P<index>\d+) s:(?P<subject>.*)$")
_CHAIN_ISSUER = re.compile(r"^\s+i:(?P<issuer>.*)$")
_CHAIN_VALIDITY = re.compile(r"^\s+v:NotBefore: (?P<before>.+?); NotAfter: (?P<after>.+)$")
_NEW_SESSION = re.compile(r"^New, (?P<protocol>\(NONE\)|\S+), Cipher is (?P<cipher>\S+)")
_SESSION_PROTOCOL = re.compile(r"^\s+Protocol\s*:\s*(?P<protocol>\S+)")
_VERIFY_RETURN = re.compile(r"^Verify return code: (?P<code>\d+) \((?P<message>.*)\)")
_VERIFICATION_ERROR = re.compile(r"^Verification error: (?P<message>.*)$")

_X509_START = re.compile(r"^\s*Certificate:\s*$")
_X509_FIELD = re.compile(r"^\s*(?P<name>Serial Number|Issuer|Subject|Not Before|Not After)\s*:\s*(?P<value>.*)$")
_X509_SAN = re.compile(r"^\s*X509v3 Subject Alternative Name:")
_X509_BASIC = re.compile(r"^\s*X509v3 Basic Constraints:")
_X509_FINGERPRINT = re.compile(r"^\s*(?:sha256|SHA256) Fingerprint=(?P<value>[0-9A-Fa-f:]+)")
_OPENSSL_TIME = "%b %d %H:%M:%S %Y %Z"


@dataclass(frozen=True)
class CertificateInfo:
    """One X.509 certificate as an input shows it.

    Fields the input does not show are None (or empty): `x509 -text` output
    has no fingerprint, an s_client chain summary no SANs. `origin` is "pem",
    "x509-text" or "s_client-chain". `label` names the file the certificate
    came from (such as "root-cert.pem") when the command line before it
    shows one. Times are aware UTC datetimes.
    """

    source: str
    line: int | None
    subject: str | None
    issuer: str | None
    serial: str | None
    not_before: datetime | None
    not_after: datetime | None
    dns_sans: tuple[str, ...]
    uri_sans: tuple[str, ...]
    is_ca: bool | None
    fingerprint_sha256: str | None
    origin: str
    ip_sans: tuple[str, ...] = ()
    label: str | None = None
    text: str = ""

    @property
    def spiffe_ids(self) -> tuple[str, ...]:
        return tuple(uri for uri in self.uri_sans if uri.startswith("spiffe://"))

    @property
    def self_issued(self) -> bool:
        return self.subject is not None and self.subject == self.issuer


@dataclass(frozen=True)
class VerifyFailure:
    """One `depth=N ...` / `verify error:num=X:...` pair of an s_client run."""

    line: int
    depth: int | None
    subject: str | None
    code: int
    message: str


@dataclass(frozen=True)
class TlsHandshake:
    """One `openssl s_client` run.

    `line` and `text` point at the line that best states the outcome: the
    first OpenSSL error or alert, else the verify return code. `alerts`
    lists the OpenSSL error reasons in the order printed ("tlsv1 alert
    unknown ca", "wrong version number", "certificate verify failed").
    With TLS 1.3 a server's rejection of the client certificate arrives
    after the handshake, so it shows only as an alert at the end while the
    verify return code is 0.
    """

    source: str
    line: int
    text: str
    target: str | None
    verify_code: int | None
    verify_error: str | None
    alerts: tuple[str, ...]
    protocol: str | None
    cipher: str | None
    peer_certificates: tuple[CertificateInfo, ...]
    no_peer_certificate: bool
    verify_failures: tuple[VerifyFailure, ...] = ()
    alert_numbers: tuple[int, ...] = ()


def sniff(doc: Document) -> bool:
    text = doc.text
    if "-----BEGIN CERTIFICATE-----" in text or "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS" in text:
        return True
    if "CONNECTED(" in text and ("Verify return code" in text or "SSL routines" in text):
        return True
    return bool(re.search(r"^\s*Certificate:\s*\n\s+Data:", text, re.MULTILINE)) or (
        "Not After :" in text and "Issuer:" in text)


def parse(doc: Document) -> ParseResult:
    result = ParseResult(KIND)
    lines = doc.text.splitlines()

    handshakes, handshake_lines = _handshakes(doc, lines, result.problems)
    result.facts.extend(handshakes)

    pem_certificates = certificates_from_pem(doc.text, doc.source, result.problems,
                                             labels=_labels_by_line(lines))
    standalone = [cert for cert in pem_certificates if cert.line not in handshake_lines]
    result.facts.extend(standalone)
    result.facts.extend(_x509_text_certificates(doc, lines, result.problems))

    if not result.facts and not result.problems:
        result.problems.append(ParseProblem(doc.source, None,
                                            "no s_client run, x509 text or PEM certificate found"))
    return result


# --- PEM ----------------------------------------------------------------------


def certificates_from_pem(text: str, source: str, problems: list[ParseProblem],
                          labels: dict[int, str] | None = None,
                          origin: str = "pem") -> list[CertificateInfo]:
    """Read every PEM certificate in `text`, plain or base64-encoded as in Secret data."""
    certificates = []
    for match in _PEM_BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        body = "".join(part.strip() for part in match["body"].splitlines())
        der = _b64decode(body)
        if der is None:
            problems.append(ParseProblem(source, line, "PEM certificate body is not valid base64"))
            continue
        info = _from_der(der, source, line, origin, problems)
        if info is not None:
            label = (labels or {}).get(line)
            certificates.append(replace(info, label=label, text="-----BEGIN CERTIFICATE-----"))

    for match in _BASE64_PEM.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        decoded = _b64decode(match.group(0))
        if decoded is None:
            problems.append(ParseProblem(source, line, "base64-encoded PEM is not valid base64"))
            continue
        inner = certificates_from_pem(decoded.decode("ascii", errors="replace"), source, problems,
                                      origin=origin)
        line_text = text.splitlines()[line - 1] if text else ""
        key = line_text.split(":", 1)[0].strip() if ":" in line_text else None
        certificates.extend(replace(cert, line=line, label=key or cert.label,
                                    text=redact_text(line_text.strip())[:120])
                            for cert in inner)
    return certificates


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _from_der(der: bytes, source: str, line: int, origin: str,
              problems: list[ParseProblem]) -> CertificateInfo | None:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as error:
        problems.append(ParseProblem(source, line, f"not a readable X.509 certificate: {error}"))
        return None

    dns: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    is_ca: bool | None = None
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
        ips = tuple(str(address) for address in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        pass
    except ValueError as error:
        problems.append(ParseProblem(source, line, f"unreadable certificate extension: {error}"))
    try:
        is_ca = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca
    except x509.ExtensionNotFound:
        pass
    except ValueError as error:
        problems.append(ParseProblem(source, line, f"unreadable certificate extension: {error}"))

    return CertificateInfo(
        source=source,
        line=line,
        subject=_name(cert.subject),
        issuer=_name(cert.issuer),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        dns_sans=dns,
        uri_sans=uris,
        is_ca=is_ca,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        origin=origin,
        ip_sans=ips,
    )


def _name(name: x509.Name) -> str:
    parts = []
    for attribute in name:
        parts.append(f"{attribute.rfc4514_attribute_name}={attribute.value}")
    return ", ".join(parts)


def normalize_name(text: str) -> str:
    """Return an OpenSSL-printed name with `=` unspaced, as this module stores names."""
    return re.sub(r"\s*=\s*", "=", text.strip())


def _labels_by_line(lines: list[str]) -> dict[int, str]:
    """Map the line of each PEM block or x509 block to a file hint from the command before it."""
    labels: dict[int, str] = {}
    current: str | None = None
    for number, line in enumerate(lines, start=1):
        command = _COMMAND.match(line)
        if command is not None and ("openssl" in line or "kubectl" in line or "cat " in line):
            current = _file_hint(command["command"])
            continue
        if "-----BEGIN CERTIFICATE-----" in line or _X509_START.match(line):
            if current:
                labels[number] = current
    return labels


def _file_hint(command: str) -> str | None:
    candidates = re.findall(r"[\w.\\/-]*(?:\.pem|\.crt|\.cer)\b", command)
    if not candidates:
        return None
    return candidates[-1].replace("\\", "").rsplit("/", 1)[-1].lstrip("{.")


# --- openssl x509 -text -------------------------------------------------------


def _x509_text_certificates(doc: Document, lines: list[str],
                            problems: list[ParseProblem]) -> list[CertificateInfo]:
    labels = _labels_by_line(lines)
    certificates = []
    index = 0
    while index < len(lines):
        if _X509_START.match(lines[index]):
            certificate, index = _x509_block(doc, lines, index, labels.get(index + 1), problems)
            certificates.append(certificate)
        else:
            index += 1
    return certificates


def _x509_block(doc: Document, lines: list[str], start: int, label: str | None,
                problems: list[ParseProblem]) -> tuple[CertificateInfo, int]:
    fields: dict[str, str] = {}
    field_lines: dict[str, int] = {}
    dns: list[str] = []
    uris: list[str] = []
    ips: list[str] = []
    is_ca: bool | None = None
    fingerprint: str | None = None

    index = start + 1
    while index < len(lines):
        line = lines[index]
        if _X509_START.match(line) or _COMMAND.match(line) or line.startswith("-----BEGIN"):
            break
        field = _X509_FIELD.match(line)
        if field is not None:
            name, value = field["name"], field["value"].strip()
            if name == "Serial Number" and not value and index + 1 < len(lines):
                index += 1
                value = lines[index].strip()
            fields[name] = value
            field_lines[name] = index + 1
        elif _X509_SAN.match(line) and index + 1 < len(lines):
            index += 1
            dns, uris, ips = _san_values(lines[index])
        elif _X509_BASIC.match(line) and index + 1 < len(lines):
            index += 1
            is_ca = "CA:TRUE" in lines[index]
        else:
            fingerprint_match = _X509_FINGERPRINT.match(line)
            if fingerprint_match is not None:
                fingerprint = fingerprint_match["value"].replace(":", "").lower()
        index += 1

    not_before = _openssl_time(fields.get("Not Before"), doc.source, field_lines.get("Not Before"),
                               problems)
    not_after = _openssl_time(fields.get("Not After"), doc.source, field_lines.get("Not After"),
                              problems)
    line = field_lines.get("Not After", start + 1)
    certificate = CertificateInfo(
        source=doc.source,
        line=line,
        subject=normalize_name(fields["Subject"]) if "Subject" in fields else None,
        issuer=normalize_name(fields["Issuer"]) if "Issuer" in fields else None,
        serial=_serial(fields.get("Serial Number")),
        not_before=not_before,
        not_after=not_after,
        dns_sans=tuple(dns),
        uri_sans=tuple(uris),
        is_ca=is_ca,
        fingerprint_sha256=fingerprint,
        origin="x509-text",
        ip_sans=tuple(ips),
        label=label,
        text=lines[line - 1].strip(),
    )
    return certificate, index


def _san_values(line: str) -> tuple[list[str], list[str], list[str]]:
    dns, uris, ips = [], [], []
    for item in line.split(","):
        kind, _, value = item.strip().partition(":")
        if kind == "DNS":
            dns.append(value)
        elif kind == "URI":
            uris.append(value)
        elif kind == "IP Address":
            ips.append(value)
    return dns, uris, ips


def _serial(value: str | None) -> str | None:
    if not value:
        return None
    decimal = re.match(r"^(\d+)\s*\(0x(?P<hex>[0-9a-fA-F]+)\)", value)
    if decimal is not None:
        return decimal["hex"].lower()
    return value.replace(":", "").lower().lstrip("0") or "0"


def _openssl_time(value: str | None, source: str, line: int | None,
                  problems: list[ParseProblem]) -> datetime | None:
    if not value:
        return None
    cleaned = re.sub(r"\s+", " ", value.strip())
    try:
        moment = datetime.strptime(cleaned, _OPENSSL_TIME)
    except ValueError:
        problems.append(ParseProblem(source, line, f"unreadable certificate time {value!r}; "
                                                   "expected e.g. 'Jun  2 14:02:46 2019 GMT'"))
        return None
    return moment.replace(tzinfo=timezone.utc)


# --- openssl s_client ----------------------------------------------------------


def _handshakes(doc: Document, lines: list[str],
                problems: list[ParseProblem]) -> tuple[list[TlsHandshake], set[int]]:
    """Split the document into s_client runs and read each. Also return their PEM lines."""
    starts = [number for number, line in enumerate(lines)
              if _COMMAND.match(line) and _S_CLIENT_COMMAND.search(line)]
    if not starts and any(_CONNECTED.match(line) for line in lines):
        # NOTE: without the command line, several runs in one file cannot be
        # separated reliably, so they are read as one.
        starts = [0]

    handshakes = []
    pem_lines: set[int] = set()
    for position, start in enumerate(starts):
        end = starts[position + 1] if position + 1 < len(starts) else len(lines)
        end = _end_of_run(lines, start, end)
        handshake = _handshake(doc, lines, start, end, problems)
        if handshake is not None:
            handshakes.append(handshake)
            pem_lines.update(number for number in range(start + 1, end + 1)
                             if "-----BEGIN CERTIFICATE-----" in lines[number - 1])
    return handshakes, pem_lines


def _end_of_run(lines: list[str], start: int, end: int) -> int:
    """Stop a run at the next shell command, so a following `openssl x509` is not part of it."""
    for index in range(start + 1, end):
        if _COMMAND.match(lines[index]) and not lines[index].startswith(" "):
            return index
    return end


def _handshake(doc: Document, lines: list[str], start: int, end: int,
               problems: list[ParseProblem]) -> TlsHandshake | None:
    target = None
    command = _COMMAND.match(lines[start])
    if command is not None:
        connect = _CONNECT_ARG.search(command["command"])
        target = connect["target"] if connect else None

    verify_code: int | None = None
    verify_error: str | None = None
    protocol: str | None = None
    cipher: str | None = None
    no_peer = False
    alerts: list[str] = []
    alert_numbers: list[int] = []
    failures: list[VerifyFailure] = []
    chain: list[CertificateInfo] = []
    first_error_line: int | None = None
    verify_line: int | None = None
    depth: int | None = None
    depth_subject: str | None = None
    saw_output = False

    index = start
    while index < end:
        line = lines[index]
        number = index + 1
        index += 1

        depth_match = _DEPTH.match(line)
        if depth_match is not None:
            depth = int(depth_match["depth"])
            depth_subject = normalize_name(depth_match["subject"]) or None
            saw_output = True
            continue
        verify_match = _VERIFY_ERROR.match(line)
        if verify_match is not None:
            failures.append(VerifyFailure(number, depth, depth_subject, int(verify_match["code"]),
                                          verify_match["message"].strip()))
            continue
        error_match = _OPENSSL_ERROR.search(line)
        if error_match is not None:
            alerts.append(error_match["reason"])
            number_match = _ALERT_NUMBER.search(line)
            if number_match is not None:
                alert_numbers.append(int(number_match["number"]))
            if first_error_line is None:
                first_error_line = number
            saw_output = True
            continue
        subject_match = _CHAIN_SUBJECT.match(line)
        if subject_match is not None:
            certificate, index = _chain_entry(doc, lines, index - 1, end, problems)
            chain.append(certificate)
            continue
        if line.startswith("no peer certificate available"):
            no_peer = True
            continue
        session = _NEW_SESSION.match(line)
        if session is not None:
            protocol = None if session["protocol"] == "(NONE)" else session["protocol"]
            cipher = None if session["cipher"] == "(NONE)" else session["cipher"]
            saw_output = True
            continue
        session_protocol = _SESSION_PROTOCOL.match(line)
        if session_protocol is not None and protocol is None:
            protocol = session_protocol["protocol"]
            continue
        verify_return = _VERIFY_RETURN.match(line)
        if verify_return is not None:
            verify_code = int(verify_return["code"])
            verify_error = None if verify_code == 0 else verify_return["message"]
            verify_line = number
            saw_output = True
            continue
        verification_error = _VERIFICATION_ERROR.match(line)
        if verification_error is not None and verify_error is None:
            verify_error = verification_error["message"].strip()
            verify_line = verify_line or number
            continue
        if _CONNECTED.match(line):
            saw_output = True

    if not saw_output:
        problems.append(ParseProblem(doc.source, start + 1,
                                     "s_client command without output (no CONNECTED, verify "
                                     "result or error lines)"))
        return None

    line = first_error_line or verify_line or start + 1
    return TlsHandshake(
        source=doc.source,
        line=line,
        text=redact_text(lines[line - 1]),
        target=target,
        verify_code=verify_code,
        verify_error=verify_error,
        alerts=tuple(alerts),
        protocol=protocol,
        cipher=cipher,
        peer_certificates=tuple(chain),
        no_peer_certificate=no_peer,
        verify_failures=tuple(failures),
        alert_numbers=tuple(alert_numbers),
    )


def _chain_entry(doc: Document, lines: list[str], index: int, end: int,
                 problems: list[ParseProblem]) -> tuple[CertificateInfo, int]:
    """Read one ` N s:... i:... v:...` entry of the chain and its PEM block (-showcerts)."""
    subject = normalize_name(_CHAIN_SUBJECT.match(lines[index])["subject"])
    number = index + 1
    issuer = None
    not_before = not_after = None
    index += 1

    while index < end:
        line = lines[index]
        issuer_match = _CHAIN_ISSUER.match(line)
        validity = _CHAIN_VALIDITY.match(line)
        if issuer_match is not None:
            issuer = normalize_name(issuer_match["issuer"])
        elif validity is not None:
            not_before = _openssl_time(validity["before"], doc.source, index + 1, problems)
            not_after = _openssl_time(validity["after"], doc.source, index + 1, problems)
        elif re.match(r"^\s+a:", line):
            pass
        elif line.startswith("-----BEGIN CERTIFICATE-----"):
            pem_end = index
            while pem_end < end and not lines[pem_end].startswith("-----END CERTIFICATE-----"):
                pem_end += 1
            block = "\n".join(lines[index:pem_end + 1]) + "\n"
            decoded = certificates_from_pem(block, doc.source, problems, origin="s_client-chain")
            if decoded:
                return replace(decoded[0], line=number, text=redact_text(lines[number - 1])), pem_end + 1
            index = pem_end
        else:
            break
        index += 1

    certificate = CertificateInfo(
        source=doc.source, line=number, subject=subject, issuer=issuer, serial=None,
        not_before=not_before, not_after=not_after, dns_sans=(), uri_sans=(),
        is_ca=None, fingerprint_sha256=None, origin="s_client-chain",
        text=redact_text(lines[number - 1]))
    return certificate, index
