"""A session process killed with SIGKILL in the middle of a step, then resumed in the TUI.

The child process walks a playbook with the real runner: one check passes,
a question is answered, and the next check runs a command that waits for a
file to appear. While it waits, the test kills the child with SIGKILL. The
resumed session keeps the finished check and the answer, starts the
interrupted step again, and, once the file exists, the step passes in the UI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doctor.journal import read_journal
from doctor.session import PASSED, KubeContext
from doctor.tui.app import SessionOptions, build_app
from doctor.tui.screens.session import SessionScreen
from tui_helpers import FIXED_NOW, REPOSITORY, run_pilot

PLAYBOOK = """
id: wait-for-file
title: Wait for a file
causes: [upstream-app-down]
steps:
  - id: first
    kind: check
    title: A quick check
    command: [python3, -c, "print('first ok')"]
    look_for: first ok
  - id: go-on
    kind: ask
    question: Go on?
    answers:
      - {label: "Yes", next: wait}
      - {label: "No", next: done}
  - id: wait
    kind: check
    title: Wait until the file exists
    command: [python3, -c, "import os, sys, time\\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.05)\\nprint('file seen')", "{url}"]
    look_for: file seen
  - id: done
    kind: note
    text: Done.
"""

CHILD = """
import sys
from pathlib import Path
from doctor.journal import Journal
from doctor.playbooks import load_playbook_files
from doctor.runner import Runner
from doctor.session import KubeContext, Session

playbook = load_playbook_files([Path(sys.argv[1])])["wait-for-file"]
journal = Journal.for_session("killed", Path(sys.argv[2]))
session = Session.start(playbook, journal, values={"url": sys.argv[3]},
                        context=KubeContext("kind-lab", "kind", "default"))
runner = Runner()
session.run_check(runner)
session.advance()
session.answer("Yes")
session.advance()
session.run_check(runner, timeout=120)
"""


def _wait_for_step(journal: Path, step: str, child: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.poll() is None, f"the session process exited early: {child.stderr.read()}"
        if journal.exists():
            started = [e.data.get("step") for e in read_journal(journal).entries if e.kind == "step_started"]
            if step in started:
                return
        time.sleep(0.05)
    pytest.fail(f"step {step} did not start within {timeout} s")


@pytest.fixture
def killed_session(tmp_path):
    """Run the child until it waits in step `wait`, SIGKILL it, and return the journal folder and flag file."""
    playbook = tmp_path / "wait.yaml"
    playbook.write_text(PLAYBOOK)
    flag = tmp_path / "flag"
    root = tmp_path / "sessions"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(playbook), str(root), str(flag)],
                             cwd=REPOSITORY, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for_step(root / "killed" / "journal.jsonl", "wait", child)
        time.sleep(0.3)  # the waiting command is running now
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        flag.touch()  # lets the orphaned waiting command end
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait(timeout=10)
        if child.stderr:
            child.stderr.close()
    return root, playbook.parent


def test_killed_journal_ends_in_step(killed_session):
    root, _ = killed_session
    entries = read_journal(root / "killed" / "journal.jsonl")

    assert entries.problems == []
    assert entries.entries[-1].kind == "step_started"
    assert entries.entries[-1].data == {"step": "wait"}


@run_pilot
async def test_resume_after_sigkill(killed_session, tmp_path):
    root, playbooks = killed_session
    options = SessionOptions(journal_root=root, playbooks_dir=playbooks, resume="killed",
                             read_context=lambda: KubeContext("kind-lab", "kind", "default"))
    app = build_app([], read_only=False, export_dir=tmp_path, clock=lambda: FIXED_NOW, sessions=options)

    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SessionScreen)
        session = screen.session
        assert session.current.id == "wait"
        assert session.record_of("first").result == PASSED
        assert session.record_of("go-on").answer == "Yes"
        assert session.values["url"].endswith("flag")

        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert session.record_of("wait").result == PASSED
        assert "file seen" in session.record_of("wait").commands[0].output

    kinds = [entry.kind for entry in read_journal(root / "killed" / "journal.jsonl").entries]
    assert kinds.count("session_started") == 1
    assert "note" in kinds  # the resume is journaled
