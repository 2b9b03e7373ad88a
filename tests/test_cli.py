"""Each exit code of `mesh-doctor scan`, and the output formats, on real inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doctor.cli import ExitCode, main

DATA = Path(__file__).parent / "data"
HEALTHY_LOG = DATA / "corpus" / "access-logs" / "38-istio-1.24plus-text-upstream-cluster-raw-bookinfo.log"
OVERFLOW_LOG = DATA / "corpus" / "access-logs" / "37-istio-1.2x-text-503-UO-overflow-fortio.log"

MINIMAL_RULES = """
symptoms:
  - id: http-503
    title: HTTP 503
    detect: {check: symptom.response_code, args: {code: 503}}
causes:
  - id: any-503
    title: Requests failed with 503
    summary: The access log shows 503 answers.
    symptoms: [http-503]
    confirm:
      - {check: symptom.slow_requests, args: {threshold_ms: 0}}
    remediation: Read the access log.
"""


def test_no_command_is_usage_error(capsys):
    assert main([]) == ExitCode.USAGE


def test_missing_path_is_no_input(capsys, tmp_path):
    code = main(["scan", str(tmp_path / "absent.log")])

    assert code == ExitCode.NO_INPUT
    assert "no such file or folder" in capsys.readouterr().err


def test_healthy_log_is_no_cause(capsys):
    code = main(["scan", str(HEALTHY_LOG)])

    assert code == ExitCode.NO_CAUSE
    assert "Symptoms: none found" in capsys.readouterr().out


def test_broken_rules_are_rules_invalid(capsys):
    code = main(["scan", "--rules", str(DATA / "broken-rules"), str(HEALTHY_LOG)])
    error = capsys.readouterr().err

    assert code == ExitCode.RULES_INVALID
    assert "invalid-yaml.yaml:4" in error


def test_unknowns_make_scan_incomplete(capsys):
    code = main(["scan", str(OVERFLOW_LOG), "--format", "json"])
    report = json.loads(capsys.readouterr().out)

    assert code == ExitCode.INCOMPLETE
    assert report["findings"][0]["cause_id"] == "circuit-breaker-overflow"
    assert report["coverage"]["not_checked"]


def test_complete_scan_is_ok(capsys, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "minimal.yaml").write_text(MINIMAL_RULES)

    code = main(["scan", "--rules", str(rules), str(OVERFLOW_LOG)])

    assert code == ExitCode.OK
    assert "any-503" in capsys.readouterr().out


def test_unwritable_output_is_internal_error(capsys, tmp_path):
    code = main(["scan", str(OVERFLOW_LOG), "-o", str(tmp_path)])

    assert code == ExitCode.INTERNAL_ERROR
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize("output_format", ["text", "json", "md"])
def test_every_format_names_top_cause(capsys, output_format):
    main(["scan", str(OVERFLOW_LOG), "--format", output_format])

    assert "circuit-breaker-overflow" in capsys.readouterr().out


def test_every_exit_code_is_tested():
    tested = {"USAGE", "NO_INPUT", "NO_CAUSE", "RULES_INVALID", "INCOMPLETE", "OK",
              "INTERNAL_ERROR", "INTERRUPTED"}

    assert tested == {code.name for code in ExitCode}


def test_ctrl_c_is_interrupted(capsys, monkeypatch, tmp_path):
    from doctor.commands import logs

    def interrupted(options):
        raise KeyboardInterrupt

    monkeypatch.setattr(logs, "run", interrupted)

    assert main(["logs", str(tmp_path / "access.log")]) == ExitCode.INTERRUPTED == 130
    assert capsys.readouterr().err == "mesh-doctor: interrupted\n"
