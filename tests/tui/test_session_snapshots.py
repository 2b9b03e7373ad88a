"""Snapshots of the guided session screen and the confirmation dialog, from the 503 example.

The runner's search path is an empty folder, so kubectl is not found and
every command could not run in the same words on every machine (kubectl's
own errors carry a timestamp and a process id).
Regenerate with `pytest tests/tui/test_session_snapshots.py --snapshot-update`
and look at every changed SVG before committing it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from doctor.runner import Runner
from doctor.session import KubeContext
from doctor.tui.app import SessionOptions, build_app
from tui_helpers import FIXED_NOW, REPOSITORY, settle, wait_for_scan

WIDE = (120, 40)
PROD = KubeContext("prod-eu", "eu-cluster", "default")


@pytest.fixture
def session_app(tmp_path, monkeypatch):
    monkeypatch.chdir(REPOSITORY)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    options = SessionOptions(journal_root=tmp_path / "sessions", runner=Runner(search_path=[str(empty)]),
                             read_context=lambda: PROD, production_contexts=("prod-*",),
                             new_id=lambda: "20260115T030700Z-snap")
    return build_app([Path("examples/503-upstream-down")], read_only=False, export_dir=tmp_path,
                     clock=lambda: FIXED_NOW, sessions=options)


async def show_first_step(pilot) -> None:
    await wait_for_scan(pilot)
    await pilot.press("enter", "g")
    await settle(pilot)


async def show_confirmation(pilot) -> None:
    await show_first_step(pilot)
    await pilot.press("m", "n", "m", "n", "m", "n", "1", "a")
    await settle(pilot)


def test_session_step_wide(snap_compare, session_app):
    """The first step of the upstream-app-down playbook in a production context.

    You should see the context bar in the warning colour with "prod-eu ·
    cluster eu-cluster · namespace default  PRODUCTION", the progress line
    "step 1 of 7 · 0 done · check: Check that the Service has ready
    endpoints", the exact kubectl command with httpbin and default filled
    in, what to look for, "not done yet", and the empty output log.
    """
    assert snap_compare(session_app, terminal_size=WIDE, run_before=show_first_step)


def test_confirmation_wide(snap_compare, session_app):
    """The confirmation dialog of the rollback step in the production context.

    You should see "Run this change?  Roll the upstream deployment back to
    the previous revision", the target context in red with PRODUCTION, the
    command `kubectl rollout undo deployment/httpbin -n default`, its
    --dry-run=server form marked "unavailable: kubectl not found on PATH", "No diff",
    the rollback command, "Afterwards step endpoints verifies the change",
    the hint to type deployment/httpbin, and the buttons Cancel (focused) and
    a disabled "Run this change".
    """
    assert snap_compare(session_app, terminal_size=WIDE, run_before=show_confirmation)
