"""The session journal survives kills and corrupt lines, and never stores secrets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from doctor.journal import (
    ANSWER,
    SESSION_STARTED,
    STEP_RESULT,
    Journal,
    list_sessions,
    read_journal,
)

TOKEN = ("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lzc3VlciJ9."
         "c2lnbmF0dXJlLXRoYXQtbXVzdC1uZXZlci1yZWFjaC1kaXNr")


def test_entries_read_back_in_order(tmp_path):
    journal = Journal.for_session("s1", root=tmp_path)
    journal.append(SESSION_STARTED, {"paths": ["examples/401-jwt-expired"]})
    journal.append(ANSWER, {"step": "recent-deploy", "answer": "Yes"}, actor="alice")

    read = read_journal(journal.path)

    assert [entry.kind for entry in read.entries] == [SESSION_STARTED, ANSWER]
    assert [entry.seq for entry in read.entries] == [1, 2]
    assert read.entries[1].actor == "alice"
    assert read.problems == []


def test_corrupt_line_skipped_and_reported(tmp_path):
    journal = Journal.for_session("s2", root=tmp_path)
    journal.append(SESSION_STARTED, {})
    with open(journal.path, "a", encoding="utf-8") as handle:
        handle.write('{"seq": 2, "at": "2026-12-04T20:00:00+00:00", "ki\n')
    journal.append(STEP_RESULT, {"step": "endpoints", "result": "passed"})

    read = read_journal(journal.path)

    assert [entry.kind for entry in read.entries] == [SESSION_STARTED, STEP_RESULT]
    assert len(read.problems) == 1
    assert read.problems[0].line == 2


def test_reopened_journal_continues_sequence(tmp_path):
    Journal.for_session("s3", root=tmp_path).append(SESSION_STARTED, {})

    entry = Journal.for_session("s3", root=tmp_path).append(STEP_RESULT, {})

    assert entry.seq == 2


def test_secrets_never_reach_disk(tmp_path):
    journal = Journal.for_session("s4", root=tmp_path)

    journal.append(STEP_RESULT, {"output": f"Authorization: Bearer {TOKEN}"})

    assert "c2lnbmF0dXJl" not in journal.path.read_text()


def test_sigkill_loses_no_written_entry(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from doctor.journal import Journal, STEP_RESULT
        journal = Journal.for_session("killed", root=Path({str(tmp_path)!r}))
        for index in range(1000):
            journal.append(STEP_RESULT, {{"index": index}})
            if index == 5:
                print("ready", flush=True)
            time.sleep(0.001)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=10)

    read = read_journal(tmp_path / "killed" / "journal.jsonl")
    indexes = [entry.data["index"] for entry in read.entries]

    assert process.returncode == -signal.SIGKILL
    assert indexes == list(range(len(indexes)))
    assert len(indexes) >= 6
    assert len(read.problems) <= 1


def test_sessions_listed_newest_first(tmp_path):
    Journal.for_session("20261204T100000Z-aaaa", root=tmp_path).append(SESSION_STARTED, {})
    Journal.for_session("20261204T110000Z-bbbb", root=tmp_path).append(SESSION_STARTED, {})

    ids = [session_id for session_id, _ in list_sessions(tmp_path)]

    assert ids == ["20261204T110000Z-bbbb", "20261204T100000Z-aaaa"]
