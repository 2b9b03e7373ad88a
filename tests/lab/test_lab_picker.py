"""The fault picker of `mesh-doctor lab practice`, driven with Textual's pilot."""

from __future__ import annotations

import asyncio

from doctor.tui.lab_picker import RANDOM, LabPickerApp

FAULTS = [("cert-expired", "1", "The server sidecar's certificate expired"),
          ("jwt-expired", "7", "The client's JWT expired 30 minutes ago")]


def _pick(*keys: str) -> str | None:
    async def drive() -> str | None:
        app = LabPickerApp(FAULTS)
        async with app.run_test(size=(100, 24)) as pilot:
            await pilot.pause()
            await pilot.press(*keys)
            await pilot.pause()
        return app.return_value

    return asyncio.run(drive())


def test_picker_enter_picks_highlighted_fault():
    assert _pick("down", "down", "enter") == "jwt-expired"


def test_picker_r_picks_random():
    assert _pick("r") == RANDOM


def test_picker_first_row_is_random():
    assert _pick("enter") == RANDOM


def test_picker_faults_follow_random_row():
    assert _pick("down", "enter") == "cert-expired"


def test_picker_q_leaves_without_fault():
    assert _pick("q") is None
