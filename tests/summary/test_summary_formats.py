"""Golden files of every format for a recorded session, and schema validation of every JSON output.

The golden files are the exported reports in examples/reports/, so the
examples always show what the current code writes. Set UPDATE_GOLDEN=1 to
rewrite them after a deliberate change, then read the diff before committing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from doctor.summary import summary_from_journal, summary_from_scan
from doctor.summary_render import FORMATS, render
from summary_helpers import (
    EXAMPLE_REPORTS,
    FIXED_NOW,
    RECORDED_REPLAY_SESSION,
    RECORDED_SESSION,
    validate,
)

EXAMPLES = ("401-jwt-expired", "403-rbac-principal", "503-upstream-down")


SESSIONS = {
    "503-upstream-down-session": RECORDED_SESSION,
    "oom-replay-session": RECORDED_REPLAY_SESSION,
}


def _summarise(journal: Path) -> dict:
    os.chdir(Path(__file__).resolve().parents[2])
    return summary_from_journal(journal.relative_to(Path.cwd()), now=FIXED_NOW).to_dict()


@pytest.fixture(scope="module")
def session_data() -> dict:
    return _summarise(RECORDED_SESSION)


@pytest.mark.parametrize("output_format", FORMATS)
@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_session_matches_golden(name, output_format):
    rendered = render(_summarise(SESSIONS[name]), output_format)
    golden = EXAMPLE_REPORTS / f"{name}.{output_format}"

    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered, encoding="utf-8")
    assert rendered == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_session_json_validates(name):
    validate(json.loads(render(_summarise(SESSIONS[name]), "json")))


def test_replay_session_passed_and_skipped():
    data = _summarise(RECORDED_REPLAY_SESSION)
    results = {item["check_id"]: item["result"] for item in data["checks_performed"]
               if item["role"] == "playbook"}

    assert results["proxy-memory-limit-too-low.limit"] == "passed"
    assert results["proxy-memory-limit-too-low.usage"].startswith("failed")
    assert data["resolution"]["state"] == "skipped"
    assert data["resolution"]["dry_run"][:3] == ["kubectl", "patch", "deployment"]
    assert data["symptom"]["hop"]["caller"] == "shop/frontend"
    assert [node["id"] for node in data["causal_chain"]][-2:] == [
        "sidecar-oom-killed", "proxy-memory-limit-too-low"]


@pytest.mark.parametrize("example", EXAMPLES)
def test_scan_json_validates(example):
    data = summary_from_scan([Path("examples") / example], now=FIXED_NOW).to_dict()

    validate(json.loads(render(data, "json")))


def test_session_header_from_journal(session_data):
    header = session_data["header"]

    assert header["incident_id"] == "503-read-only-session"
    assert header["kube_context"] == "lab-readonly"
    assert header["cluster"] == "lab"
    assert header["namespaces"] == ["default"]
    assert "httpbin.default" in header["services"]
    assert header["mesh_version"] == "istio-proxy 1.26.2"


def test_session_milestones_monotonic(session_data):
    reached = [item["at"] for item in session_data["milestones"] if item["at"]]

    assert reached == sorted(reached)
    assert [item["name"] for item in session_data["milestones"]][:3] == \
        ["started", "detected", "identified"]
    assert session_data["problems"] == []


def test_session_resolution_refused(session_data):
    resolution = session_data["resolution"]

    assert resolution["state"] == "refused"
    assert resolution["change"] == ["kubectl", "rollout", "undo", "deployment/httpbin", "-n",
                                    "default"]
    assert resolution["dry_run"][-1] == "--dry-run=server"
    assert resolution["verify_step"] == "endpoints"


def test_session_timeline_kinds(session_data):
    kinds = {item["kind"] for item in session_data["timeline"]}

    assert {"symptom", "finding", "check", "decision", "action", "milestone"} <= kinds
    journal_links = [item["evidence"] for item in session_data["timeline"]
                     if item["actor"] == "oncall"]
    assert all(link["source"].endswith("journal.jsonl") for link in journal_links)


def test_session_playbook_checks_listed(session_data):
    playbook_checks = [item for item in session_data["checks_performed"]
                       if item["role"] == "playbook"]

    assert [item["check_id"] for item in playbook_checks] == [
        "upstream-app-down.endpoints", "upstream-app-down.app-status", "upstream-app-down.logs"]
    assert all("refused" in item["result"] for item in playbook_checks)


def test_impact_counts_callers_only(session_data):
    impact = session_data["impact"]

    assert impact["basis"] == "callers' outbound entries"
    assert impact["requests"] == 6
    assert impact["failed_requests"] == 3
    assert sum(point["failed"] for point in impact["series"]) == 3
    assert impact["peak"]["error_rate"] == 1.0


def test_markdown_has_every_section(session_data):
    markdown = render(session_data, "md")

    for heading in ("## Summary", "## Milestones (UTC)", "## Symptom", "## Impact",
                    "## Root cause", "## Hypotheses", "## Resolution", "## Timeline (UTC)",
                    "## Checks performed", "## Checks not performed", "## Action items",
                    "## Handoff"):
        assert heading in markdown
    assert "<" not in markdown.replace("<masked>", "").replace("<signature masked>", "")


def test_html_is_self_contained(session_data):
    page = render(session_data, "html")

    assert "<script" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    assert 'id="error-rate-chart"' in page
    assert 'id="causal-chain"' in page
    assert page.count("explained by") == len(session_data["causal_chain"]) - 1


def test_html_evidence_links_resolve(session_data):
    page = render(session_data, "html")

    targets = set(re.findall(r'href="#([^"]+)"', page))
    assert targets
    for target in targets:
        assert f'id="{target}"' in page
    assert 'href="#evidence-1"' in page


def test_scan_without_access_log_not_measured(tmp_path):
    bundle = tmp_path / "policies-only"
    bundle.mkdir()
    source = Path("examples/403-rbac-principal/istio/policies.yaml")
    (bundle / "policies.yaml").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")

    data = summary_from_scan([bundle], now=FIXED_NOW).to_dict()

    assert data["impact"]["measured"] is False
    assert "access log" in data["impact"]["reason"]
    validate(json.loads(render(data, "json")))
    assert "Not measured" in render(data, "md")


@pytest.mark.parametrize("example", EXAMPLES)
def test_series_totals_match_logstats(example):
    from doctor.logstats import summarize_entries
    from doctor.parsers.accesslog import AccessLogEntry
    from doctor.readers import read_paths
    from doctor.scan import load_engine
    from doctor.summary_impact import error_rate_series

    read = read_paths([Path("examples") / example], load_engine().rulebook.signatures)
    entries = list(read.facts.of(AccessLogEntry))
    series, _ = error_rate_series(entries)
    per_minute = summarize_entries(entries).error_rate()

    assert sum(point["requests"] for point in series) == sum(total for _, total, _ in per_minute)
    assert sum(point["failed"] for point in series) == sum(failed for _, _, failed in per_minute)
