"""Helpers of the pilot and snapshot tests: run a scenario, wait for the scan, stop blinking."""

from __future__ import annotations

import asyncio
import functools
import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

from rich.console import Console
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Input, Static

FIXED_NOW = datetime(2026, 1, 15, 3, 7, 0, tzinfo=timezone.utc)
REPOSITORY = Path(__file__).resolve().parents[2]


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
