"""Helpers of the pilot and snapshot tests: run a scenario, wait for the scan, stop blinking."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest

from rich.console import Console
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Input, Static

FIXED_NOW = datetime(2026, 1, 15, 3, 7, 0, tzinfo=timezone.utc)
REPOSITORY = Path(__file__).resolve().parents[2]

if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))

from doctor.runner import Runner  # noqa: E402
from doctor.session import current_kube_context  # noqa: E402
from doctor.tui.app import MeshDoctorApp, SessionOptions, build_app  # noqa: E402
from tests.replay.scenario import NAMESPACE, oom_incident  # noqa: E402
from doctor.tui.screens.confirm import ConfirmChange  # noqa: E402
from tests.replay.server import ReplayServer  # noqa: E402


@contextlib.contextmanager
def oom_replay_server(tmp_path: Path, delay_s: float = 0.0) -> Iterator[ReplayServer]:
    """Serve the recorded sidecar OOM incident on 127.0.0.1, each response `delay_s` late.

    Skips the test when kubectl is missing, since the live collection runs it.
    """
    if Runner().which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    workdir = tmp_path / "replay"
    workdir.mkdir()
    server = ReplayServer(oom_incident(), workdir=workdir, delay_s=delay_s).start()
    try:
        yield server
    finally:
        server.stop()


def symptom_form_app(server: ReplayServer, tmp_path: Path, read_only: bool = True,
                     **session_options: Any) -> MeshDoctorApp:
    """Build the app that opens the symptom form and collects live from `server`."""
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
    options = SessionOptions(
        journal_root=tmp_path / "sessions", runner=Runner(kubeconfig=kubeconfig), kubeconfig=str(kubeconfig),
        read_context=lambda: current_kube_context({"KUBECONFIG": str(kubeconfig)}), symptom_form=True,
        **session_options)
    return build_app([], read_only=read_only, export_dir=tmp_path, clock=lambda: FIXED_NOW,
                     sessions=options)


def run_pilot(scenario: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test scenario in its own event loop, keeping its fixtures."""

    @functools.wraps(scenario)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(scenario(*args, **kwargs))

    return run


async def wait_for_scan(pilot: Pilot) -> None:
    """Wait until the scan worker finished and its result is on screen."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    assert pilot.app.diagnosis is not None, "the scan posted no diagnosis"


async def settle(pilot: Pilot) -> None:
    """Let workers finish and messages render, then stop every cursor blinking."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


def static_text(widget: Static) -> str:
    """Return the plain text a `Static` shows, whether it contains a string, `Text` or a Rich table."""
    content = widget.content
    if isinstance(content, str):
        return content
    if isinstance(content, Text):
        return content.plain
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(content)
    return console.export_text()


async def run_check(app: MeshDoctorApp, pilot: Pilot, session: Any, step_id: str) -> Any:
    """Run the session's current step, which must be `step_id`, and return its record."""
    assert session.current.id == step_id
    await pilot.press("r")
    await app.workers.wait_for_complete()
    await pilot.pause()
    return session.record_of(step_id)


async def apply_confirmed(app: MeshDoctorApp, pilot: Pilot, session: Any, step_id: str) -> Any:
    """Apply the current remediation `step_id`, confirm it in the dialog, and return its record."""
    return await answer_apply_dialog(app, pilot, session, step_id, "#confirm-run")


async def answer_apply_dialog(app: MeshDoctorApp, pilot: Pilot, session: Any, step_id: str,
                              button: str) -> Any:
    """Apply the current remediation `step_id`, click `button` in the dialog, and return its record."""
    assert session.current.id == step_id
    await pilot.press("a")
    await app.workers.wait_for_complete()
    await pilot.pause()
    assert isinstance(app.screen, ConfirmChange)
    await pilot.click(button)
    await app.workers.wait_for_complete()
    await pilot.pause()
    return session.record_of(step_id)
