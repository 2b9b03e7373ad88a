"""`mesh-doctor resume [ID]`: open a guided session again at the step where it stopped.

Without an ID it resumes the newest session that has not finished. Steps
whose result reached the journal keep it, and a step that was running when
the process died starts again. A corrupt journal line is reported and skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "resume"
HELP = "continue a guided session where it stopped (default: the newest unfinished one)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_id", nargs="?", metavar="ID", help="session id from `mesh-doctor sessions`")
    parser.add_argument("--read-only", action="store_true",
                        help="refuse every mutating step of the session")
    parser.add_argument("--state-dir", type=Path,
                        help="folder of the session journals "
                             "(default: $XDG_STATE_HOME/mesh-doctor/sessions)")


def run(options: argparse.Namespace) -> int:
    from doctor.cli import ExitCode
    from doctor.journal import list_sessions, read_journal, sessions_dir
    from doctor.session import load_production_contexts, session_summary

    root = options.state_dir or sessions_dir()
    session_id = options.session_id
    if session_id is None:
        # Sessions are listed newest first, so stop reading journals at the first open one.
        session_id = next((sid for sid, path in list_sessions(root)
                           if session_summary(path)["state"] == "open"), None)
        if session_id is None:
            print(f"mesh-doctor resume: no unfinished session in {root}", file=sys.stderr)
            return ExitCode.NO_INPUT
    journal_path = root / session_id / "journal.jsonl"
    if not journal_path.is_file():
        print(f"mesh-doctor resume: no session {session_id!r} in {root}; "
              "`mesh-doctor sessions` lists them", file=sys.stderr)
        return ExitCode.USAGE

    read = read_journal(journal_path)
    for problem in read.problems:
        print(f"mesh-doctor resume: {problem.source}:{problem.line}: {problem.message}", file=sys.stderr)
    started = next((entry for entry in read.entries if entry.kind == "session_started"), None)
    if started is None:
        print(f"mesh-doctor resume: {journal_path} has no session start; it cannot be resumed",
              file=sys.stderr)
        return ExitCode.INTERNAL_ERROR

    production, problems = load_production_contexts()
    for problem in problems:
        print(f"mesh-doctor resume: {problem.source}: {problem.message}", file=sys.stderr)

    from doctor.tui.app import SessionOptions, build_app

    paths = [Path(path) for path in started.data.get("paths") or []]
    app = build_app(paths, read_only=options.read_only,
                    sessions=SessionOptions(journal_root=root, production_contexts=production,
                                            resume=session_id))
    app.run()
    return ExitCode.OK
