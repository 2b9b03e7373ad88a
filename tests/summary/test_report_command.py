"""`mesh-doctor report`: sessions by id, folder or newest, one-shot scans, and its errors."""

from __future__ import annotations

import json
import shutil

import pytest

from doctor.cli import ExitCode, main
from summary_helpers import RECORDED_SESSION, validate


@pytest.fixture
def state_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    sessions = tmp_path / "state" / "mesh-doctor" / "sessions"
    for session_id in ("20261204T200000Z-aaaa", "20261204T210000Z-bbbb"):
        (sessions / session_id).mkdir(parents=True)
        shutil.copy(RECORDED_SESSION, sessions / session_id / "journal.jsonl")
    return sessions


def test_report_session_by_id(state_home, capsys):
    code = main(["report", "20261204T200000Z-aaaa", "--format", "json"])

    data = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK
    assert data["source"]["session_id"] == "20261204T200000Z-aaaa"
    validate(data)


def test_report_newest_session_by_default(state_home, capsys):
    code = main(["report"])

    output = capsys.readouterr().out
    assert code == ExitCode.OK
    assert output.startswith("# Incident 20261204T210000Z-bbbb:")


def test_report_session_folder_to_file(state_home, tmp_path, capsys):
    target = tmp_path / "incident.html"

    code = main(["report", str(state_home / "20261204T200000Z-aaaa"), "--format", "html",
                 "-o", str(target)])

    assert code == ExitCode.OK
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert f"wrote {target}" in capsys.readouterr().err


def test_report_scan_json(tmp_path):
    target = tmp_path / "scan.json"

    code = main(["report", "--scan", "examples/401-jwt-expired", "--format", "json",
                 "-o", str(target)])

    data = json.loads(target.read_text(encoding="utf-8"))
    assert code == ExitCode.OK
    assert data["source"]["kind"] == "scan"
    assert data["root_cause"]["cause_id"] == "jwt-expired"
    validate(data)


def test_report_unknown_session(state_home, capsys):
    code = main(["report", "no-such-session"])

    error = capsys.readouterr().err
    assert code == ExitCode.NO_INPUT
    assert "no session 'no-such-session'" in error
    assert "mesh-doctor sessions" in error


def test_report_without_sessions(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "empty"))

    code = main(["report"])

    assert code == ExitCode.NO_INPUT
    assert "--scan PATH" in capsys.readouterr().err


def test_report_session_and_scan_rejected(state_home, capsys):
    code = main(["report", "20261204T200000Z-aaaa", "--scan", "examples/401-jwt-expired"])

    assert code == ExitCode.USAGE
    assert "not both" in capsys.readouterr().err


def test_report_scan_missing_path(tmp_path, capsys):
    code = main(["report", "--scan", str(tmp_path / "missing")])

    assert code == ExitCode.NO_INPUT
    assert "not found" in capsys.readouterr().err


def test_report_unwritable_output(tmp_path, capsys):
    code = main(["report", "--scan", "examples/401-jwt-expired", "-o",
                 str(tmp_path / "missing-folder" / "x.md")])

    assert code == ExitCode.INTERNAL_ERROR
    assert "cannot write" in capsys.readouterr().err


def test_report_overrides_header(tmp_path):
    target = tmp_path / "scan.json"

    code = main(["report", "--scan", "examples/401-jwt-expired", "--format", "json",
                 "--incident-id", "INC-4711", "--title", "Checkout 401s", "--severity", "SEV2",
                 "--owner", "team-identity", "-o", str(target)])

    data = json.loads(target.read_text(encoding="utf-8"))
    assert code == ExitCode.OK
    assert data["header"]["incident_id"] == "INC-4711"
    assert data["header"]["title"] == "Checkout 401s"
    assert data["header"]["severity"] == "SEV2"
    assert {item["owner"] for item in data["action_items"]} == {"team-identity"}
    assert "severity SEV2" in data["handoff"]
    validate(data)
