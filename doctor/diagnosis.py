"""The result of one diagnosis: symptoms, ranked findings and coverage.

This is what the CLI prints, the TUI shows and the reports serialise. The JSON
form (`to_dict`) is the machine contract and carries `SCHEMA_VERSION`.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from doctor.model import Evidence, ParseProblem, Skipped

SCHEMA_VERSION = "1.0"


class CauseStatus(str, enum.Enum):
    CONFIRMED = "confirmed"
    LIKELY = "likely"
    POSSIBLE = "possible"
    UNKNOWN = "unknown"
    RULED_OUT = "ruled_out"


STATUS_ORDER = {
    CauseStatus.CONFIRMED: 0,
    CauseStatus.LIKELY: 1,
    CauseStatus.POSSIBLE: 2,
    CauseStatus.UNKNOWN: 3,
    CauseStatus.RULED_OUT: 4,
}


@dataclass(frozen=True)
class SymptomReport:
    """A symptom seen in the evidence, with how often and over which time range."""

    symptom_id: str
    title: str
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check run for one cause."""

    check_id: str
    role: str  # "confirm" or "rule_out"
    result: str  # "hit", "miss" or "unknown"
    reason: str = ""
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One candidate cause with its status, score, causal chain and cited evidence."""

    cause_id: str
    title: str
    status: CauseStatus
    score: float
    chain: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    checks: tuple[CheckOutcome, ...]
    summary: str = ""
    remediation: str = ""
    playbook: str | None = None


@dataclass(frozen=True)
class NotChecked:
    """A check that could not run, with the reason."""

    check_id: str
    cause_id: str
    reason: str


@dataclass(frozen=True)
class Coverage:
    checked: tuple[str, ...] = ()
    not_checked: tuple[NotChecked, ...] = ()


@dataclass(frozen=True)
class InputSummary:
    """What was read: each source with the kind a reader recognised it as."""

    source: str
    kind: str
    facts: int


@dataclass
class Diagnosis:
    symptoms: list[SymptomReport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    coverage: Coverage = field(default_factory=Coverage)
    parse_problems: list[ParseProblem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    inputs: list[InputSummary] = field(default_factory=list)
    generated_at: datetime | None = None

    @property
    def top(self) -> Finding | None:
        """The highest-ranked finding that is not ruled out or unknown."""
        for finding in self.findings:
            if finding.status in (CauseStatus.CONFIRMED, CauseStatus.LIKELY, CauseStatus.POSSIBLE):
                return finding
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "generated_at": _iso(self.generated_at),
            "inputs": [asdict(item) for item in self.inputs],
            "symptoms": [
                {
                    "id": symptom.symptom_id,
                    "title": symptom.title,
                    "count": symptom.count,
                    "first_seen": _iso(symptom.first_seen),
                    "last_seen": _iso(symptom.last_seen),
                    "evidence": [_evidence_dict(item) for item in symptom.evidence],
                }
                for symptom in self.symptoms
            ],
            "findings": [
                {
                    "rank": rank,
                    "cause_id": finding.cause_id,
                    "title": finding.title,
                    "status": finding.status.value,
                    "score": round(finding.score, 3),
                    "chain": list(finding.chain),
                    "summary": finding.summary,
                    "evidence": [_evidence_dict(item) for item in finding.evidence],
                    "checks": [
                        {
                            "check_id": check.check_id,
                            "role": check.role,
                            "result": check.result,
                            "reason": check.reason,
                        }
                        for check in finding.checks
                    ],
                    "remediation": finding.remediation,
                    "playbook": finding.playbook,
                }
                for rank, finding in enumerate(self.findings, start=1)
            ],
            "coverage": {
                "checked": list(self.coverage.checked),
                "not_checked": [asdict(item) for item in self.coverage.not_checked],
            },
            "parse_problems": [asdict(problem) for problem in self.parse_problems],
            "skipped": [asdict(item) for item in self.skipped],
        }


def _evidence_dict(evidence: Evidence) -> dict[str, Any]:
    return {
        "source": evidence.source,
        "line": evidence.line,
        "text": evidence.text,
        "supports": evidence.supports,
        "note": evidence.note,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
