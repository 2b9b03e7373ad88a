"""`mesh-doctor sessions` and `mesh-doctor resume` on journals written by real sessions."""

from __future__ import annotations

import json

from doctor.cli import ExitCode, main
from doctor.journal import Journal
from doctor.playbooks import load_playbooks
from doctor.session import KubeContext, Session


def _start(root, session_id: str) -> Session:
    playbook = load_playbooks()["upstream-app-down"]
    return Session.start(playbook, Journal.for_session(session_id, root),
                         values={"namespace": "default", "service": "httpbin"},
                         context=KubeContext("kind-lab", "kind", "default"))


def test_sessions_lists_newest_first(tmp_path, capsys):
    _start(tmp_path, "20260101T000000Z-aaaa").mark_shown()
    finished = _start(tmp_path, "20260102T000000Z-bbbb")
    finished.finish("closed")

    code = main(["sessions", "--state-dir", str(tmp_path)])

    lines = capsys.readouterr().out.splitlines()
    assert code == ExitCode.OK
    assert lines[0].startswith("20260102T000000Z-bbbb  finished")
    assert lines[1].startswith("20260101T000000Z-aaaa  open")
    assert "upstream-app-down at endpoints" in lines[1]


def test_sessions_json_counts_corrupt_lines(tmp_path, capsys):
    session = _start(tmp_path, "20260101T000000Z-aaaa")
    with session.journal.path.open("a") as handle:
        handle.write("{not json\n")

    main(["sessions", "--json", "--state-dir", str(tmp_path)])

    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["problems"] == 1
    assert listed[0]["context"] == "kind-lab"


def test_resume_unknown_id(tmp_path, capsys):
    code = main(["resume", "nope", "--state-dir", str(tmp_path)])

    assert code == ExitCode.USAGE
    assert "no session 'nope'" in capsys.readouterr().err


def test_resume_without_open_session(tmp_path, capsys):
    _start(tmp_path, "20260101T000000Z-aaaa").finish()

    code = main(["resume", "--state-dir", str(tmp_path)])

    assert code == ExitCode.NO_INPUT
    assert "no unfinished session" in capsys.readouterr().err
