"""`mesh-doctor report`: export the incident summary of a session or a scan.

    mesh-doctor report                         the newest session, Markdown to stdout
    mesh-doctor report ID --format html -o incident.html
    mesh-doctor report --scan examples/503-upstream-down --format json

SESSION is a session id (see `mesh-doctor sessions`), a session folder or a
journal file. With --scan the summary comes from a one-shot scan of the
paths instead, so it lacks what only a session records.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "report"
HELP = "write the incident summary (postmortem) of a session or a scan as md, json or html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session", nargs="?", metavar="SESSION",
                        help="session id, session folder or journal file (default: the newest "
                             "session)")
    parser.add_argument("--scan", nargs="+", type=Path, metavar="PATH",
                        help="summarise a one-shot scan of these files, folders or bundles "
                             "instead of a session")
    parser.add_argument("--format", choices=("md", "json", "html"), default="md",
                        help="md pastes into tickets and chat, json follows "
                             "docs/schema/incident-summary.schema.json, html is one "
                             "self-contained file (default: md)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write to FILE instead of stdout")
    parser.add_argument("--incident-id", metavar="ID",
                        help="the incident's id in your incident tool (default: the session id)")
    parser.add_argument("--title", help="the incident's title (default: symptom, hop and cause)")
    parser.add_argument("--severity", metavar="LEVEL",
                        help="the incident's severity, as your incident tool names it (SEV2, P1…)")
    parser.add_argument("--owner", help="owner of the action items that have none")


def run(options: argparse.Namespace) -> int:
    from doctor.cli import ExitCode
    from doctor.rules import RuleLoadError
    from doctor.summary import (
        SummaryInputError,
        apply_overrides,
        summary_from_journal,
        summary_from_scan,
    )
    from doctor.summary_render import render

    if options.scan and options.session:
        print("mesh-doctor report: give a SESSION or --scan PATH…, not both", file=sys.stderr)
        return ExitCode.USAGE

    try:
        if options.scan:
            missing = [str(path) for path in options.scan if not path.exists()]
            if missing:
                print(f"mesh-doctor report: not found: {', '.join(missing)}", file=sys.stderr)
                return ExitCode.NO_INPUT
            summary = summary_from_scan(options.scan)
        else:
            journal = resolve_journal(options.session)
            summary = summary_from_journal(journal)
    except SummaryInputError as error:
        print(f"mesh-doctor report: {error}", file=sys.stderr)
        return ExitCode.NO_INPUT
    except RuleLoadError as error:
        print(f"mesh-doctor report: invalid rules\n{error}", file=sys.stderr)
        return ExitCode.RULES_INVALID

    apply_overrides(summary, incident_id=options.incident_id, title=options.title,
                    severity=options.severity, owner=options.owner)
    data = summary.to_dict()
    for problem in data["problems"]:
        print(f"mesh-doctor report: note: {problem}", file=sys.stderr)
    output = render(data, options.format)

    if options.output is None:
        sys.stdout.write(output)
        return ExitCode.OK
    try:
        options.output.write_text(output, encoding="utf-8")
    except OSError as error:
        print(f"mesh-doctor report: cannot write {options.output}: {error.strerror}",
              file=sys.stderr)
        return ExitCode.INTERNAL_ERROR
    print(f"wrote {options.output}", file=sys.stderr)
    return ExitCode.OK


def resolve_journal(session: str | None) -> Path:
    """Find the journal of `session`: an id, a session folder, a journal file, or the newest.

    Raises SummaryInputError naming what was looked for.
    """
    from doctor.journal import JOURNAL_NAME, list_sessions, sessions_dir
    from doctor.summary import SummaryInputError

    if session is None:
        newest = next(iter(list_sessions()), None)
        if newest is None:
            raise SummaryInputError(f"no session in {sessions_dir()}; start one in the TUI, or "
                                    "summarise a scan with --scan PATH")
        return newest[1]

    candidate = Path(session)
    if candidate.is_file():
        return candidate
    if (candidate / JOURNAL_NAME).is_file():
        return candidate / JOURNAL_NAME
    by_id = sessions_dir() / session / JOURNAL_NAME
    if by_id.is_file():
        return by_id
    raise SummaryInputError(f"no session {session!r}: neither a journal file, a session folder, "
                            f"nor an id in {sessions_dir()}; list them with `mesh-doctor sessions`")
