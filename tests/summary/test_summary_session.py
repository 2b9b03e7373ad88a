"""A session that applies a change and verifies it: milestones, resolution and timeline.

The session walks a small playbook whose commands act on a file in a
temporary folder, run for real through the command runner: the check fails,
the confirmed change creates the file, and the verify step then passes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doctor.journal import NOTE, Journal, read_journal
from doctor.playbooks import load_playbook_files
from doctor.runner import Runner
from doctor.session import KubeContext, Session
from doctor.summary import SummaryInputError, summary_from_journal
from doctor.summary_render import render
from summary_helpers import FIXED_NOW, SAMPLE, validate

PLAYBOOK = """\
id: restore-marker
title: Restore the readiness marker
causes: [upstream-app-down]
steps:
  - id: present
    kind: check
    title: Check that the readiness marker exists
    command: [test, -f, "{name}"]
    look_for: exit status 0
  - id: restore
    kind: remediate
    title: Create the readiness marker
    command: [touch, "{name}"]
    dry_run: [test, -d, "{host}"]
    rollback: [rm, -f, "{name}"]
    verify: present
"""


@pytest.fixture
def applied_session(tmp_path) -> Path:
    playbook_file = tmp_path / "restore-marker.yaml"
    playbook_file.write_text(PLAYBOOK, encoding="utf-8")
    playbook = load_playbook_files([playbook_file])["restore-marker"]
    marker = tmp_path / "ready"
    journal = Journal.for_session("applied", root=tmp_path / "sessions")
    runner = Runner(default_timeout_s=10)
    session = Session.start(playbook, journal, paths=[SAMPLE], actor="alice",
                            values={"name": str(marker), "host": str(tmp_path)},
                            context=KubeContext("lab", "lab", "default"))

    assert session.run_check(runner).result == "failed"
    session.advance()
    plan = session.plan_remediation(runner)
    confirmation = session.confirm(plan)
    assert session.run_remediation(runner, confirmation).result == "applied"
    session.advance()
    assert session.run_check(runner).result == "passed"
    session.advance()
    journal.append(NOTE, {"action_item": {"type": "prevent", "text": "Add a readiness probe",
                                          "owner": "team-httpbin",
                                          "success_criterion": "probe fails before traffic"}},
                   actor="alice")
    return journal.path


def test_applied_change_is_verified(applied_session):
    data = summary_from_journal(applied_session, now=FIXED_NOW).to_dict()
    resolution = data["resolution"]

    assert resolution["state"] == "verified"
    assert resolution["change"][0] == "touch"
    assert resolution["dry_run"][:2] == ["test", "-d"]
    assert resolution["rollback"][:2] == ["rm", "-f"]
    assert resolution["confirmed_by"] == "alice"
    assert resolution["exit_status"] == 0
    assert resolution["verification"]["step"] == "present"
    assert resolution["verification"]["result"] == "passed"


def test_applied_session_milestones(applied_session):
    data = summary_from_journal(applied_session, now=FIXED_NOW).to_dict()
    milestones = {item["name"]: item for item in data["milestones"]}

    assert all(milestones[name]["at"] for name in milestones)
    assert milestones["mitigated"]["at"] <= milestones["resolved"]["at"]
    assert data["header"]["status"] == "resolved"
    assert [item["name"] for item in data["durations"]][-1] == "total"
    assert data["problems"] == []


def test_applied_session_timeline_and_items(applied_session):
    data = summary_from_journal(applied_session, now=FIXED_NOW).to_dict()
    kinds = [item["kind"] for item in data["timeline"]]
    texts = " ".join(item["text"] for item in data["timeline"])

    assert "action" in kinds
    assert "alice confirmed apply of `touch" in texts
    assert "Verify step present passed" in texts
    assert {"type": "prevent", "text": "Add a readiness probe", "owner": "team-httpbin",
            "success_criterion": "probe fails before traffic"} in data["action_items"]
    assert not [item for item in data["action_items"] if item["type"] == "mitigate"]
    for output_format in ("md", "json", "html"):
        rendered = render(data, output_format)
        assert "verified" in rendered
    validate(json.loads(render(data, "json")))


def test_marked_milestone_out_of_order_reported(applied_session):
    Journal(applied_session).append("milestone", {"name": "started",
                                                  "at": "2099-01-01T00:00:00+00:00"})

    data = summary_from_journal(applied_session, now=FIXED_NOW).to_dict()

    assert data["milestones"][0]["basis"] == "marked by mesh-doctor"
    assert any("is before started" in problem for problem in data["problems"])
    validate(data)


def test_corrupt_journal_line_reported(applied_session):
    with open(applied_session, "a", encoding="utf-8") as handle:
        handle.write('{"seq": 99, "at": "2026-12-04T21:00:00+00:00", "ki\n')

    data = summary_from_journal(applied_session, now=FIXED_NOW).to_dict()

    assert len(read_journal(applied_session).problems) == 1
    assert any("corrupt or truncated" in problem for problem in data["problems"])
    assert data["resolution"]["state"] == "verified"


def test_missing_journal_raises(tmp_path):
    with pytest.raises(SummaryInputError, match="no session journal"):
        summary_from_journal(tmp_path / "nothing" / "journal.jsonl")


def test_unreadable_inputs_still_summarised(tmp_path):
    journal = Journal.for_session("gone", root=tmp_path)
    journal.append("session_started", {"paths": [str(tmp_path / "deleted-bundle")]})

    data = summary_from_journal(journal.path, now=FIXED_NOW).to_dict()

    assert data["impact"]["measured"] is False
    assert any("no longer readable" in problem for problem in data["problems"])
    assert data["root_cause"] is None
    validate(data)
