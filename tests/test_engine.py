"""The engine ranks causes, builds chains and never reads missing evidence as healthy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import pytest

from doctor.checks import CheckRegistry, hit, miss
from doctor.diagnosis import CauseStatus
from doctor.engine import diagnose
from doctor.facts import FactSet
from doctor.model import Evidence, Observation, ProbeStatus
from doctor.rules import load_rule_files


@dataclass(frozen=True)
class Flag:
    """A minimal fact: one response flag seen on one line of a log."""

    source: str
    line: int
    flag: str


RULES = """
symptoms:
  - id: http-503
    title: HTTP 503
    detect: {check: flag.seen, args: {flag: "503"}}
causes:
  - id: connect-failure
    title: Upstream connect failure
    summary: The sidecar could not connect.
    symptoms: [http-503]
    confirm:
      - {check: flag.seen, args: {flag: UF}}
    remediation: Find out why the upstream refuses connections.
  - id: app-down
    title: Application down
    summary: Nothing listens on the port.
    explains: [connect-failure]
    confirm:
      - {check: flag.seen, args: {flag: refused}, weight: 2}
      - {check: flag.seen, args: {flag: not-ready}}
    rule_out:
      - {check: flag.seen, args: {flag: app-ready}}
    remediation: Start the application.
  - id: sidecar-killed
    title: Sidecar killed
    summary: The upstream sidecar was OOM-killed.
    explains: [connect-failure]
    confirm:
      - {check: pods.killed}
    remediation: Raise the memory limit.
"""


def _flag_seen(facts: FactSet, args: Mapping[str, Any]):
    wanted = args["flag"]
    found = [fact for fact in facts.of(Flag) if fact.flag == wanted]
    if not found:
        return miss(reason=f"no {wanted}")
    return hit(*(Evidence(fact.source, fact.line, fact.flag) for fact in found), count=len(found))


def _pods_killed(facts: FactSet, args: Mapping[str, Any]):
    return miss(reason="no pod was killed")


@pytest.fixture
def book(tmp_path: Path):
    registry = CheckRegistry()
    registry.register("flag.seen", _flag_seen, "A flag is in the log.", needs=("log",),
                      params=("flag",))
    registry.register("pods.killed", _pods_killed, "A pod was killed.", needs=("pods",))
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return load_rule_files([path], registry), registry


def _facts(*flags: str) -> FactSet:
    facts = FactSet()
    facts.add("log", "access.log", [Flag("access.log", index, flag)
                                    for index, flag in enumerate(flags, start=1)])
    return facts


def test_deeper_confirmed_cause_ranks_first(book):
    rulebook, registry = book

    diagnosis = diagnose(_facts("503", "UF", "refused", "not-ready"), rulebook, registry)

    assert diagnosis.top.cause_id == "app-down"
    assert diagnosis.top.status is CauseStatus.CONFIRMED
    assert diagnosis.top.chain == ("http-503", "connect-failure", "app-down")
    assert diagnosis.findings[1].cause_id == "connect-failure"


def test_partial_evidence_is_likely(book):
    rulebook, registry = book

    diagnosis = diagnose(_facts("503", "UF", "refused"), rulebook, registry)
    finding = next(item for item in diagnosis.findings if item.cause_id == "app-down")

    assert finding.status is CauseStatus.LIKELY
    assert finding.score == pytest.approx(2 / 3)


def test_rule_out_hit_rules_cause_out(book):
    rulebook, registry = book

    diagnosis = diagnose(_facts("503", "UF", "refused", "not-ready", "app-ready"), rulebook,
                         registry)
    finding = next(item for item in diagnosis.findings if item.cause_id == "app-down")

    assert finding.status is CauseStatus.RULED_OUT
    assert any(not item.supports and item.text == "app-ready" for item in finding.evidence)


def test_missing_input_is_unknown_not_healthy(book):
    rulebook, registry = book

    diagnosis = diagnose(_facts("503", "UF"), rulebook, registry)
    finding = next(item for item in diagnosis.findings if item.cause_id == "sidecar-killed")
    not_checked = [item for item in diagnosis.coverage.not_checked
                   if item.cause_id == "sidecar-killed"]

    assert finding.status is CauseStatus.UNKNOWN
    assert not_checked
    assert "pods" in not_checked[0].reason


def test_symptom_counted_with_evidence(book):
    rulebook, registry = book

    diagnosis = diagnose(_facts("503", "503", "UF"), rulebook, registry)

    assert [symptom.symptom_id for symptom in diagnosis.symptoms] == ["http-503"]
    assert diagnosis.symptoms[0].count == 2


def test_failed_probe_listed_as_not_checked(book):
    rulebook, registry = book

    failed = Observation("istioctl-proxy-status", ("istioctl", "proxy-status"),
                         datetime.now(timezone.utc), 0.0, None, ProbeStatus.UNAVAILABLE, "",
                         reason="istioctl not found on PATH")

    diagnosis = diagnose(_facts("503"), rulebook, registry, observations=[failed])

    reasons = [item.reason for item in diagnosis.coverage.not_checked
               if item.check_id == "probe:istioctl-proxy-status"]
    assert reasons == ["unavailable: istioctl not found on PATH"]


def test_crashing_check_becomes_unknown(tmp_path: Path):
    def explode(facts, args):
        raise KeyError("missing field")

    registry = CheckRegistry()
    registry.register("flag.seen", _flag_seen, "A flag is in the log.", needs=("log",),
                      params=("flag",))
    registry.register("pods.killed", explode, "Crashes.")
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    rulebook = load_rule_files([path], registry)

    diagnosis = diagnose(_facts("503", "UF"), rulebook, registry)
    finding = next(item for item in diagnosis.findings if item.cause_id == "sidecar-killed")

    assert finding.status is CauseStatus.UNKNOWN
    assert "KeyError" in finding.checks[0].reason


def test_json_contract_fields(book):
    rulebook, registry = book

    data = diagnose(_facts("503", "UF", "refused", "not-ready"), rulebook, registry).to_dict()
    finding = data["findings"][0]

    assert data["schema_version"]
    assert set(finding) >= {"cause_id", "title", "status", "score", "chain", "evidence"}
    assert set(finding["evidence"][0]) >= {"source", "line", "text", "supports"}
    assert set(data["coverage"]) == {"checked", "not_checked"}
    assert "parse_problems" in data
