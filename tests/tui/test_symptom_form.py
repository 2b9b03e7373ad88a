"""Start without evidence: the symptom form scopes a live collection from the replay API server.

The replay server on 127.0.0.1 serves the recorded sidecar OOM incident. The
engineer types 503, the caller and the callee; the app collects what that
symptom needs (read-only), diagnoses it, and a guided session on the top
finding journals the symptom and fills its values from the collected pods.
"""

from __future__ import annotations

import pytest

from doctor.journal import read_journal
from doctor.tui.screens.session import SessionScreen
from doctor.tui.screens.symptom import SymptomForm
from tui_helpers import oom_replay_server, run_pilot, symptom_form_app


@pytest.fixture
def replay_server(tmp_path):
    with oom_replay_server(tmp_path) as server:
        yield server


def _app(server, tmp_path):
    return symptom_form_app(server, tmp_path, read_only=False, new_id=lambda: "from-symptom")


async def _fill(pilot, field: str, text: str) -> None:
    widget = pilot.app.screen.query_one(f"#symptom-{field}")
    widget.value = text


@run_pilot
async def test_symptom_form_collects_and_guides(replay_server, tmp_path):
    app = _app(replay_server, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, SymptomForm)
        await _fill(pilot, "code", "503")
        await _fill(pilot, "caller", "frontend")
        await _fill(pilot, "callee", "checkout")
        await _fill(pilot, "since", "2h")
        await pilot.click("#symptom-collect")
        await app.workers.wait_for_complete()
        await pilot.pause()

        assert app.diagnosis is not None
        top = app.diagnosis.top
        assert top is not None
        assert top.cause_id in ("proxy-memory-limit-too-low", "sidecar-oom-killed")
        assert replay_server.writes() == []

        await pilot.press("enter", "g")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, SessionScreen)
        assert app.screen.session.values["pod"] == "checkout-7c9d8b6f5-x2x7k"

    started = read_journal(tmp_path / "sessions" / "from-symptom" / "journal.jsonl").entries[0]
    assert started.data["symptom"] == {"symptom": "503", "caller": "frontend", "callee": "checkout",
                                       "since": "2h", "namespace": ""}


@run_pilot
async def test_unknown_symptom_reopens_form(replay_server, tmp_path):
    app = _app(replay_server, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await _fill(pilot, "code", "418")
        await pilot.click("#symptom-collect")
        await app.workers.wait_for_complete()
        await pilot.pause()

        assert isinstance(app.screen, SymptomForm)
        assert "unknown symptom '418'" in str(app.screen.query_one("#symptom-error").content)
