"""The symptom form's live collection shows its progress and stops on escape or ctrl+c.

The replay API server on 127.0.0.1 serves the recorded sidecar OOM incident
and delays every response by 0.4 s, so the collection is still running when the
engineer cancels it.
"""

from __future__ import annotations

import sys

import pytest

from doctor.runner import Runner
from doctor.session import current_kube_context
from doctor.tui.app import SessionOptions, build_app
from doctor.tui.screens.collection import CollectionScreen
from doctor.tui.screens.triage import TriageScreen
from tui_helpers import FIXED_NOW, REPOSITORY, run_pilot, static_text

if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))

from tests.replay.scenario import NAMESPACE, oom_incident  # noqa: E402
from tests.replay.server import ReplayServer  # noqa: E402

# Pauses of 0.1 s to wait for the first finished probe, about 30 s in all; the wait stops there.
PROGRESS_PAUSES = 300


@pytest.fixture
def slow_server(tmp_path):
    if Runner().which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    workdir = tmp_path / "replay"
    workdir.mkdir()
    server = ReplayServer(oom_incident(), workdir=workdir, delay_s=0.4).start()
    yield server
    server.stop()


def _app(server, tmp_path):
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
    options = SessionOptions(
        journal_root=tmp_path / "sessions", runner=Runner(kubeconfig=kubeconfig), kubeconfig=str(kubeconfig),
        read_context=lambda: current_kube_context({"KUBECONFIG": str(kubeconfig)}), symptom_form=True)
    return build_app([], export_dir=tmp_path, clock=lambda: FIXED_NOW, sessions=options)


@pytest.mark.parametrize("key", ["escape", "ctrl+c"])
@run_pilot
async def test_key_cancels_live_collection(slow_server, tmp_path, key):
    app = _app(slow_server, tmp_path)
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
