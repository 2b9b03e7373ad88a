"""`mesh-doctor lab fix`: confirmation unless it is a dry run, and clear errors when it cannot run."""

from __future__ import annotations

import pytest

from doctor.cli import ExitCode, main
from doctor.lab.mesh import LabError, MeshLab
from doctor.lab.remedies import Remedies
from doctor.model import ProbeStatus
from doctor.runner import Runner, is_mutating


@pytest.mark.parametrize("argv", [
    ["mesh-doctor", "lab", "fix", "rotate-cert"],
    ["/work/main/.venv/bin/mesh-doctor", "lab", "fix", "restart-app"],
    ["mesh-doctor", "lab", "--state-dir", "/tmp/lab", "fix", "policy", "--allow-principal",
     "cluster.local/ns/default/sa/default"],
    ["mesh-doctor", "lab", "fix", "policy", "--rollback"],
    ["mesh-doctor", "lab", "fix", "rotate-cert", "--", "--dry-run"],
])
def test_lab_fix_is_mutating(argv):
    assert is_mutating(argv)


@pytest.mark.parametrize("argv", [
    ["mesh-doctor", "lab", "fix", "rotate-cert", "--dry-run"],
    ["mesh-doctor", "lab", "fix", "policy", "--rollback", "--dry-run"],
    ["mesh-doctor", "lab", "probe", "request"],
    ["mesh-doctor", "lab", "status"],
    ["mesh-doctor", "lab", "--state-dir", "fix", "status"],
    ["mesh-doctor", "scan", "fix"],
])
def test_other_mesh_doctor_commands_only_read(argv):
    assert not is_mutating(argv)


def test_fix_without_running_lab(tmp_path, capsys):
    code = main(["lab", "--state-dir", str(tmp_path / "state"), "fix", "rotate-cert", "--dry-run"])

    assert code == ExitCode.INTERNAL_ERROR
    assert "start one with `mesh-doctor lab up`" in capsys.readouterr().err


def test_unknown_remedy_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["lab", "--state-dir", str(tmp_path / "state"), "fix", "reboot-cluster"])

    assert exit_info.value.code == ExitCode.USAGE
    assert "invalid choice: 'reboot-cluster'" in capsys.readouterr().err


@pytest.mark.parametrize("principal, message", [
    (None, "policy needs --allow-principal"),
    ("default", "is not TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT"),
    ("cluster.local/ns/default/sa/sleep", "already names cluster.local/ns/default/sa/sleep"),
])
def test_policy_rejects_bad_principal(tmp_path, principal, message):
    remedies = Remedies(MeshLab(tmp_path))

    with pytest.raises(LabError, match=message):
        remedies.run("policy", principal=principal)


def test_rollback_before_any_fix_is_refused(tmp_path):
    with pytest.raises(LabError, match="has not been applied in this lab"):
        Remedies(MeshLab(tmp_path)).run("rotate-cert", rollback=True)


def test_lab_commands_find_the_callers_state_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    observation = Runner().run(["mesh-doctor", "lab", "fix", "rotate-cert", "--dry-run"], probe_id="test.lab-fix")

    assert observation.status is ProbeStatus.FAILED
    assert f"no lab is running in {tmp_path / 'state' / 'mesh-doctor' / 'lab'}" in observation.reason


def test_only_running_lab_captures_get_lab_playbooks(tmp_path):
    from doctor.bundle import write_bundle
    from doctor.lab.sessions import RUNNING_LAB_MARK, playbooks_for

    files = {"server-access.log": ""}
    daemon = write_bundle(tmp_path / "daemon", [], files,
                          description="Mesh lab fault cert-expired: expired" + RUNNING_LAB_MARK)
    practice = write_bundle(tmp_path / "practice", [], files, description="Mesh lab fault cert-expired: expired")

    lab_source = playbooks_for([daemon])["cert-expired"].source
    shipped_source = playbooks_for([practice])["cert-expired"].source
    assert "/doctor/lab/playbooks/" in lab_source
    assert "/doctor/lab/playbooks/" not in shipped_source
    assert playbooks_for([daemon])["jwt-expired"].source == playbooks_for([practice])["jwt-expired"].source
