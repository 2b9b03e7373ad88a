"""`mesh-doctor sessions`: list the guided sessions in the journal folder, newest first.

    mesh-doctor sessions            one line per session: id, state, playbook, step, context
    mesh-doctor sessions --json     the same as a JSON list

A journal with corrupt lines is listed with the count of skipped lines;
`mesh-doctor resume ID` continues a session that has not finished.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "sessions"
HELP = "list guided sessions (id, state, playbook, last step); resume one with `resume ID`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.add_argument("--state-dir", type=Path,
                        help="folder of the session journals "
                             "(default: $XDG_STATE_HOME/mesh-doctor/sessions)")


def run(options: argparse.Namespace) -> int:
    from doctor.cli import ExitCode
    from doctor.journal import list_sessions, sessions_dir
    from doctor.session import session_summary

    root = options.state_dir or sessions_dir()
    summaries = [session_summary(path) for _, path in list_sessions(root)]
    if options.json:
        for summary in summaries:
            for key in ("started", "updated"):
                summary[key] = summary[key].isoformat() if summary[key] else None
        print(json.dumps(summaries, indent=2))
        return ExitCode.OK
    if not summaries:
        print(f"no sessions in {root}; start one from a finding with g in the TUI", file=sys.stderr)
        return ExitCode.OK

    for summary in summaries:
        updated = summary["updated"].strftime("%Y-%m-%d %H:%M") if summary["updated"] else "-"
        verified = " verified" if summary["verified"] else ""
        problems = f" ({summary['problems']} corrupt lines skipped)" if summary["problems"] else ""
        print(f"{summary['id']}  {summary['state']:<10}{verified:<9}  {updated}  "
              f"{summary['playbook'] or '?'} at {summary['step'] or '-'}  "
              f"context {summary['context'] or '-'}{problems}")
    return ExitCode.OK
