"""Helpers shared by the rule tests: run the shipped engine and pick out findings."""

from __future__ import annotations

from pathlib import Path

from doctor.diagnosis import CheckOutcome, Diagnosis, Finding
from doctor.scan import Engine, scan_paths


def diagnose(engine: Engine, *paths: Path) -> Diagnosis:
    return scan_paths(list(paths), engine=engine)


def finding(diagnosis: Diagnosis, cause_id: str) -> Finding:
    for item in diagnosis.findings:
        if item.cause_id == cause_id:
            return item
    raise AssertionError(f"no finding for {cause_id}; findings: "
                         f"{[(item.cause_id, item.status.value) for item in diagnosis.findings]}")


def outcome(item: Finding, check_id: str) -> CheckOutcome:
    for check in item.checks:
        if check.check_id == check_id:
            return check
    raise AssertionError(f"{item.cause_id} ran no check {check_id}")
