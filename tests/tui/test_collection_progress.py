"""The symptom form's live collection shows its progress and stops on escape or ctrl+c.

The replay API server on 127.0.0.1 serves the recorded sidecar OOM incident
and delays every response by 0.4 s, so the collection is still running when the
engineer cancels it.
"""

from __future__ import annotations

import pytest

from doctor.tui.screens.collection import CollectionScreen
from doctor.tui.screens.triage import TriageScreen
from tui_helpers import oom_replay_server, run_pilot, static_text, symptom_form_app

# Pauses of 0.1 s to wait for the first finished probe, about 30 s in all; the wait stops there.
PROGRESS_PAUSES = 300


@pytest.fixture
def slow_server(tmp_path):
    with oom_replay_server(tmp_path, delay_s=0.4) as server:
        yield server


@pytest.mark.parametrize("key", ["escape", "ctrl+c"])
@run_pilot
async def test_key_cancels_live_collection(slow_server, tmp_path, key):
    app = symptom_form_app(slow_server, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.screen.query_one("#symptom-code").value = "503"
        await pilot.click("#symptom-collect")
        await pilot.pause()
        assert isinstance(app.screen, CollectionScreen)

        for _ in range(PROGRESS_PAUSES):
            if " probes done" in static_text(app.screen.query_one("#collection-count")):
                break
            await pilot.pause(0.1)
        count = static_text(app.screen.query_one("#collection-count"))
        assert " probes done; last " in count, count

        await pilot.press(key)
        await app.workers.wait_for_complete()
        await pilot.pause()

        ended = app.collection_ended
        assert ended is not None
        assert ended.cancelled
        assert ended.not_run > 0
        assert isinstance(app.screen, TriageScreen)
        assert app.diagnosis is not None
        not_checked = " ".join(str(item) for item in app.diagnosis.coverage.not_checked)
        assert "not run: cancelled by the engineer" in not_checked
        assert slow_server.writes() == []
