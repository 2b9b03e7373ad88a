"""The catalogue of known error signatures and the scanner that finds them in free text.

The catalogue is data (`rules/signatures.yaml`): each entry names a regular
expression, searched in every line, the symptom the line is a sign of, and
the causes that can produce it. `load_catalogue` validates the file and
reports every bad entry with its file, id and line. `scan` runs the catalogue
over a document and returns one `SignatureMatch` per matching line and entry.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from doctor.model import Document, ParseProblem, ParseResult
from doctor.redact import redact_text
from doctor.yamlsource import LoadedYaml, YamlSyntaxError, load_yaml

logger = logging.getLogger(__name__)

KIND = "error-signatures"

REQUIRED_KEYS = ("id", "pattern", "symptom", "causes", "description")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]*$")

# Timestamps at the start of a log line: ISO 8601 (istio-agent, istiod, Envoy
# access logs in brackets) and Envoy's own "[2024-05-01 12:00:00.123]".
_LEADING_TIMESTAMP = re.compile(
    r"^\s*\[?(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})(?P<fraction>\.\d+)?"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?\]?"
)


@dataclass(frozen=True)
class Signature:
    """One catalogue entry: a regex searched per line, and what a match is a sign of."""

    id: str
    pattern: str
    symptom: str | None
    causes: tuple[str, ...]
    description: str
    source: str
    line: int | None
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.pattern))


@dataclass(frozen=True)
class SignatureMatch:
    """A line that matches a catalogue entry.

    `text` is the redacted line. `groups` contains the named groups the
    pattern captured, redacted too, and leaves out unmatched optional groups. `timestamp` is the
    time at the start of the line when it has one, in UTC.
    """

    source: str
    line: int
    text: str
    signature_id: str
    symptom: str | None
    causes: tuple[str, ...]
    groups: dict[str, str]
    timestamp: datetime | None = None


def load_catalogue(path: Path) -> tuple[list[Signature], list[ParseProblem]]:
    """Load and validate a signature catalogue, turning every bad entry into a problem.

    Valid entries are returned even when others are bad, so a caller can
    decide whether a partly broken catalogue is still usable.
    """
    source = str(path)
    try:
        loaded = load_yaml(path.read_text(encoding="utf-8"), source)
    except OSError as error:
        return [], [ParseProblem(source, None, f"cannot read the signature catalogue: {error.strerror}")]
    except UnicodeDecodeError:
        return [], [ParseProblem(source, None, "the signature catalogue is not UTF-8 text")]
    except YamlSyntaxError as error:
        return [], [ParseProblem(source, error.line, error.message)]

    data = loaded.data
    if not isinstance(data, dict) or not isinstance(data.get("signatures"), list):
        line = loaded.line_of("signatures") if isinstance(data, dict) else 1
        return [], [ParseProblem(source, line, "expected a top-level 'signatures:' list")]

    entries: list[Signature] = []
    problems: list[ParseProblem] = []
    first_line: dict[str, int | None] = {}
    for index, entry in enumerate(data["signatures"]):
        signature = _read_entry(entry, index, loaded, source, problems)
        if signature is None:
            continue
        if signature.id in first_line:
            problems.append(ParseProblem(
                source, signature.line,
                f"signature {signature.id!r}: duplicate id; first defined at line "
                f"{first_line[signature.id]}"))
            continue
        first_line[signature.id] = signature.line
        entries.append(signature)
    return entries, problems


def _read_entry(entry: Any, index: int, loaded: LoadedYaml, source: str,
                problems: list[ParseProblem]) -> Signature | None:
    line = loaded.line_of("signatures", index)
    if not isinstance(entry, dict):
        problems.append(ParseProblem(source, line, f"signatures[{index}]: expected a mapping "
                                                   "with keys " + ", ".join(REQUIRED_KEYS)))
        return None

    entry_id = entry.get("id")
    label = f"signature {entry_id!r}" if isinstance(entry_id, str) else f"signatures[{index}]"
    valid = True

    for key in REQUIRED_KEYS:
        if key not in entry:
            problems.append(ParseProblem(source, line, f"{label}: missing required key {key!r}"))
            valid = False
    for key in entry:
        if key not in REQUIRED_KEYS:
            problems.append(ParseProblem(source, loaded.line_of("signatures", index, key),
                                         f"{label}: unknown key {key!r}; expected "
                                         + ", ".join(REQUIRED_KEYS)))
            valid = False
    if not valid:
        return None

    def key_line(key: str) -> int | None:
        return loaded.line_of("signatures", index, key)

    if not isinstance(entry_id, str) or not ID_PATTERN.match(entry_id):
        problems.append(ParseProblem(source, key_line("id"),
                                     f"{label}: id must be lower-case words joined by '-'"))
        valid = False

    pattern = entry["pattern"]
    if not isinstance(pattern, str) or not pattern:
        problems.append(ParseProblem(source, key_line("pattern"),
                                     f"{label}: pattern must be a non-empty regular expression"))
        valid = False
    else:
        try:
            re.compile(pattern)
        except re.error as error:
            problems.append(ParseProblem(
                source, key_line("pattern"),
                f"{label}: invalid regular expression {pattern!r}: {error.msg} at position "
                f"{error.pos}"))
            valid = False

    symptom = entry["symptom"]
    if symptom is not None and not isinstance(symptom, str):
        problems.append(ParseProblem(source, key_line("symptom"),
                                     f"{label}: symptom must be a symptom id or null"))
        valid = False

    causes = entry["causes"]
    if not isinstance(causes, list) or not all(isinstance(cause, str) for cause in causes):
        problems.append(ParseProblem(source, key_line("causes"),
                                     f"{label}: causes must be a list of cause ids"))
        valid = False

    description = entry["description"]
    if not isinstance(description, str) or not description.strip():
        problems.append(ParseProblem(source, key_line("description"),
                                     f"{label}: description must be a non-empty text"))
        valid = False

    if not valid:
        return None
    return Signature(entry_id, pattern, symptom, tuple(causes), description.strip(), source, line)


def scan(doc: Document, catalogue: Sequence[Signature]) -> ParseResult:
    """Search every line of `doc` for every signature of `catalogue`."""
    result = ParseResult(kind=KIND)
    if not catalogue:
        return result

    for number, line in enumerate(doc.text.splitlines(), start=1):
        redacted: str | None = None
        for signature in catalogue:
            match = signature.regex.search(line)
            if match is None:
                continue
            if redacted is None:
                redacted = redact_text(line)
            groups = {name: redact_text(value) for name, value in match.groupdict().items()
                      if value is not None}
            result.facts.append(SignatureMatch(
                source=doc.source,
                line=number,
                text=redacted,
                signature_id=signature.id,
                symptom=signature.symptom,
                causes=signature.causes,
                groups=groups,
                timestamp=leading_timestamp(line),
            ))
    return result


def leading_timestamp(line: str) -> datetime | None:
    """Return the timestamp a log line starts with, in UTC, or None.

    A time without a zone is taken as UTC, which is what Envoy and the Istio
    components write in containers unless TZ is set.
    """
    match = _LEADING_TIMESTAMP.match(line)
    if match is None:
        return None

    fraction = (match["fraction"] or "")[:7]
    zone = match["zone"] or "+00:00"
    if zone == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{match['time']}{fraction}{zone}")
    except ValueError:
        return None
    return moment.astimezone(timezone.utc)
