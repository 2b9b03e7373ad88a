"""The diagnosis engine: symptoms present, causes ranked, chains and coverage.

Pure: it reads a `FactSet`, a `Rulebook` and a `CheckRegistry` and returns a
`Diagnosis`. A check whose inputs are absent is `unknown`, never healthy, and
every unknown that matters for the symptoms present is listed in coverage.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import networkx as nx

from doctor.checks import HIT, MISS, UNKNOWN, CheckRegistry, CheckResult
from doctor.diagnosis import (
    STATUS_ORDER,
    CauseStatus,
    CheckOutcome,
    Coverage,
    Diagnosis,
    Finding,
    NotChecked,
    SymptomReport,
)
from doctor.facts import FactSet
from doctor.model import Evidence, Observation, ProbeStatus
from doctor.rules import CauseRule, CheckRef, Rulebook

logger = logging.getLogger(__name__)

LIKELY_THRESHOLD = 0.5


@dataclass(frozen=True)
class _CauseVerdict:
    cause: CauseRule
    status: CauseStatus
    score: float
    outcomes: tuple[CheckOutcome, ...]


class _CheckRunner:
    """Runs checks once per (id, arguments), turning missing inputs and crashes into unknowns."""

    def __init__(self, facts: FactSet, registry: CheckRegistry) -> None:
        self._facts = facts
        self._registry = registry
        self._cache: dict[tuple[str, str], CheckResult] = {}

    def run(self, ref: CheckRef) -> CheckResult:
        key = (ref.check_id, json.dumps(ref.args, sort_keys=True, default=str))
        if key not in self._cache:
            self._cache[key] = self._run_uncached(ref)
        return self._cache[key]

    def _run_uncached(self, ref: CheckRef) -> CheckResult:
        spec = self._registry.get(ref.check_id)
        if spec is None:
            return CheckResult(UNKNOWN, reason=f"check {ref.check_id!r} is not registered")

        if spec.needs and not any(self._facts.has_kind(kind) for kind in spec.needs):
            expected = " or ".join(spec.needs)
            return CheckResult(UNKNOWN, reason=f"no input of kind {expected} was read")

        try:
            return spec.function(self._facts, ref.args)
        except Exception as error:  # noqa: BLE001 - one broken check must not stop the diagnosis
            logger.exception("check %s failed with args %s", ref.check_id, ref.args)
            return CheckResult(UNKNOWN, reason=f"the check failed: {type(error).__name__}: {error}")


def diagnose(
    facts: FactSet,
    book: Rulebook,
    registry: CheckRegistry,
    observations: Sequence[Observation] = (),
    now: datetime | None = None,
) -> Diagnosis:
    """Name the symptoms present and rank every cause connected to them."""
    runner = _CheckRunner(facts, registry)

    symptoms = _detect_symptoms(book, runner)
    present = [symptom.symptom_id for symptom in symptoms]

    verdicts = {cause_id: _judge(cause, runner) for cause_id, cause in book.causes.items()}
    relevant = _relevant_causes(book.graph, present, verdicts)

    findings = []
    for cause_id in relevant:
        verdict = verdicts[cause_id]
        chain = _chain(book.graph, present, cause_id, verdicts)
        findings.append(_finding(verdict, chain, facts))
    findings.sort(key=lambda finding: _rank_key(finding, present))

    coverage = _coverage(relevant, verdicts, observations)
    return Diagnosis(
        symptoms=symptoms,
        findings=findings,
        coverage=coverage,
        parse_problems=list(facts.problems),
        skipped=list(facts.skipped),
        generated_at=now or datetime.now(timezone.utc),
    )


def _detect_symptoms(book: Rulebook, runner: _CheckRunner) -> list[SymptomReport]:
    reports = []
    for symptom in book.symptoms.values():
        result = runner.run(symptom.detect)
        if result.result != HIT:
            continue
        reports.append(SymptomReport(
            symptom_id=symptom.id,
            title=symptom.title,
            count=result.count or len(result.evidence),
            first_seen=result.first_seen,
            last_seen=result.last_seen,
            evidence=result.evidence,
        ))
    reports.sort(key=lambda report: -report.count)
    return reports


def _judge(cause: CauseRule, runner: _CheckRunner) -> _CauseVerdict:
    outcomes: list[CheckOutcome] = []
    total_weight = 0.0
    hit_weight = 0.0
    unknown_weight = 0.0

    for ref in cause.confirm:
        result = runner.run(ref)
        outcomes.append(_outcome(ref, "confirm", result))
        total_weight += ref.weight
        if result.result == HIT:
            hit_weight += ref.weight
        elif result.result == UNKNOWN:
            unknown_weight += ref.weight

    ruled_out = False
    for ref in cause.rule_out:
        result = runner.run(ref)
        outcomes.append(_outcome(ref, "rule_out", result))
        if result.result == HIT:
            ruled_out = True

    score = hit_weight / total_weight if total_weight else 0.0
    if ruled_out:
        status = CauseStatus.RULED_OUT
    elif score >= 1.0:
        status = CauseStatus.CONFIRMED
    elif score >= LIKELY_THRESHOLD:
        status = CauseStatus.LIKELY
    elif score > 0:
        status = CauseStatus.POSSIBLE
    elif unknown_weight > 0:
        status = CauseStatus.UNKNOWN
    else:
        status = CauseStatus.RULED_OUT
    return _CauseVerdict(cause, status, score, tuple(outcomes))


def _outcome(ref: CheckRef, role: str, result: CheckResult) -> CheckOutcome:
    if role == "rule_out":
        # Evidence of a rule-out check that hit argues against the cause.
        evidence = tuple(_with_support(item, result.result != HIT and item.supports)
                         for item in result.evidence)
    else:
        evidence = tuple(_with_support(item, result.result == HIT and item.supports)
                         for item in result.evidence)
    return CheckOutcome(ref.check_id, role, result.result, result.reason, evidence)


def _with_support(evidence: Evidence, supports: bool) -> Evidence:
    if evidence.supports == supports:
        return evidence
    return Evidence(evidence.source, evidence.line, evidence.text, supports, evidence.note)


def _relevant_causes(graph: nx.DiGraph, present: list[str],
                     verdicts: dict[str, _CauseVerdict]) -> list[str]:
    """Causes reachable from a present symptom, plus causes the evidence supports on its own.

    While symptoms are present, a cause outside their reach must be at least
    likely to be listed, because context such as a STRICT policy alone makes
    many unrelated causes possible.
    """
    reachable: set[str] = set()
    for symptom_id in present:
        reachable.update(nx.descendants(graph, symptom_id))

    standalone = (CauseStatus.CONFIRMED, CauseStatus.LIKELY)
    if not present:
        standalone += (CauseStatus.POSSIBLE,)

    relevant = []
    for cause_id, verdict in verdicts.items():
        if cause_id in reachable or verdict.status in standalone:
            relevant.append(cause_id)
    return relevant


def _chain(graph: nx.DiGraph, present: list[str], cause_id: str,
           verdicts: dict[str, _CauseVerdict]) -> tuple[str, ...]:
    """Pick the path from a symptom to the cause whose steps have the best support.

    Paths from symptoms present in the evidence win over paths from symptoms
    that were not seen.
    """
    symptoms = [node for node, data in graph.nodes(data=True) if data.get("kind") == "symptom"]
    ordered = present + [symptom for symptom in symptoms if symptom not in present]

    best: tuple[tuple[int, int, int], list[str]] | None = None
    for symptom_id in ordered:
        if not nx.has_path(graph, symptom_id, cause_id):
            continue
        for path in nx.all_simple_paths(graph, symptom_id, cause_id):
            steps = [verdicts[node].status for node in path[1:-1] if node in verdicts]
            weakest = max((STATUS_ORDER[status] for status in steps), default=0)
            from_present = 0 if symptom_id in present else 1
            key = (from_present, weakest, -len(path))
            if best is None or key < best[0]:
                best = (key, path)
    return tuple(best[1]) if best else (cause_id,)


def _finding(verdict: _CauseVerdict, chain: tuple[str, ...], facts: FactSet) -> Finding:
    evidence: list[Evidence] = []
    position: dict[tuple[str, int | None, str, bool], int] = {}
    for outcome in verdict.outcomes:
        for cited in outcome.evidence:
            item = _quote_raw_line(cited, facts)
            key = (item.source, item.line, item.text, item.supports)
            if key not in position:
                position[key] = len(evidence)
                evidence.append(item)
                continue
            # Two checks cited the same line: keep one entry with both notes.
            first = evidence[position[key]]
            if item.note and item.note not in first.note:
                note = "; ".join(part for part in (first.note, item.note) if part)
                evidence[position[key]] = Evidence(first.source, first.line, first.text,
                                                   first.supports, note)
    evidence.sort(key=lambda item: not item.supports)

    cause = verdict.cause
    return Finding(
        cause_id=cause.id,
        title=cause.title,
        status=verdict.status,
        score=verdict.score,
        chain=chain,
        evidence=tuple(evidence),
        checks=verdict.outcomes,
        summary=cause.summary,
        remediation=cause.remediation,
        playbook=cause.playbook,
    )


def _quote_raw_line(evidence: Evidence, facts: FactSet) -> Evidence:
    """Cite the raw line of the source, moving a check's own description into the note.

    Checks of structured inputs describe what they found ("istio-proxy:
    terminated OOMKilled"); the engineer needs the line as the file shows it.
    Text that already contains the raw line, such as a multi-line JSON
    access-log entry, is kept as it is, and so is the description when the
    raw line is only punctuation such as the `{` of a JSON object.
    """
    raw = facts.line_text(evidence.source, evidence.line)
    if raw is None or not any(char.isalnum() for char in raw) or raw.strip() in evidence.text:
        return evidence
    note = "; ".join(part for part in (evidence.text, evidence.note) if part)
    return Evidence(evidence.source, evidence.line, raw.strip(), evidence.supports, note)


def _rank_key(finding: Finding, present: list[str]) -> tuple[Any, ...]:
    from_present = 0 if finding.chain and finding.chain[0] in present else 1
    return (STATUS_ORDER[finding.status], from_present, -len(finding.chain), -finding.score,
            finding.cause_id)


def _coverage(relevant: Iterable[str], verdicts: dict[str, _CauseVerdict],
              observations: Sequence[Observation]) -> Coverage:
    checked: set[str] = set()
    not_checked: list[NotChecked] = []
    for cause_id in relevant:
        for outcome in verdicts[cause_id].outcomes:
            if outcome.result in (HIT, MISS):
                checked.add(outcome.check_id)
            else:
                not_checked.append(NotChecked(outcome.check_id, cause_id, outcome.reason))

    for observation in observations:
        if observation.status != ProbeStatus.OK:
            reason = observation.reason or f"the probe ended with status {observation.status.value}"
            not_checked.append(NotChecked(f"probe:{observation.probe_id}", "",
                                          f"{observation.status.value}: {reason}"))
    return Coverage(checked=tuple(sorted(checked)), not_checked=tuple(not_checked))
