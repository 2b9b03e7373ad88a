"""A guided session whose kubectl commands go to the replay API server of the sidecar OOM incident.

The finding comes from the recorded incident files (tests/data/recorded/
oom-incident); the session's commands run the real kubectl against the
replay server on 127.0.0.1, which serves the same incident and logs every
request. The test walks the proxy-memory-limit-too-low playbook, opens the
confirmation dialog after the server-side dry run, cancels it, and checks
that the server received no write. The replay server serves no
Deployments, so the dry run fails in discovery and the dialog says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from doctor.runner import Runner
from doctor.session import COULD_NOT_RUN, FAILED, PASSED, current_kube_context
from doctor.tui.app import SessionOptions, build_app
from doctor.tui.screens.confirm import ConfirmChange
from doctor.tui.screens.session import SessionScreen
from tui_helpers import FIXED_NOW, REPOSITORY, oom_replay_server, run_pilot, static_text, wait_for_scan

if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))

from tests.replay.scenario import NAMESPACE  # noqa: E402

INCIDENT = Path("tests/data/recorded/oom-incident")


@pytest.fixture
def replay_server(tmp_path):
    with oom_replay_server(tmp_path) as server:
        yield server


async def _settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@run_pilot
async def test_replay_session_dry_run_only(replay_server, tmp_path, monkeypatch):
    monkeypatch.chdir(REPOSITORY)
    kubeconfig = replay_server.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
    options = SessionOptions(
        journal_root=tmp_path / "sessions", runner=Runner(kubeconfig=kubeconfig),
        read_context=lambda: current_kube_context({"KUBECONFIG": str(kubeconfig)}), new_id=lambda: "replay")
    app = build_app([INCIDENT], read_only=False, export_dir=tmp_path, clock=lambda: FIXED_NOW,
                    sessions=options)

    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_scan(pilot)
        assert app.diagnosis.top.cause_id == "proxy-memory-limit-too-low"
        await pilot.press("enter", "g")
        await _settle(pilot)
        screen = app.screen
        assert isinstance(screen, SessionScreen)
        session = screen.session
        assert session.context.context is not None
        assert session.values["deployment"] == "checkout"

        await pilot.press("r")  # limit: the pod spec from the replay server
        await _settle(pilot)
        limit = session.record_of("limit")
        assert limit.result == PASSED
        assert "istio-proxy" in limit.commands[0].output
        assert "64Mi" in limit.commands[0].output

        await pilot.press("n", "r")  # usage: kubectl top needs the metrics API, which is not served
        await _settle(pilot)
        assert session.record_of("usage").result in (FAILED, COULD_NOT_RUN)
        assert session.record_of("usage").reason

        await pilot.press("n", "m", "n")
        assert session.current.id == "raise-limit"
        replay_server.clear_requests()
        await pilot.press("a")
        await _settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmChange)
        details = static_text(dialog.query_one("#confirm-details"))
        assert "--dry-run=server" in details
        # The replay server serves no apps/v1 Deployments, so kubectl reports it and the dialog warns.
        assert dialog.plan.dry_run_result.status == "failed"
        assert 'resource type "deployment"' in dialog.plan.dry_run_result.reason
        assert "The dry run did not succeed" in details
        await pilot.press("enter")  # Cancel
        await _settle(pilot)

    assert replay_server.requests, "the dry run reached the replay server"
    assert replay_server.writes() == []
