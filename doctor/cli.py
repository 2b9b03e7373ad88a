"""The `mesh-doctor` command: headless scans and the terminal UI.

Results go to stdout; diagnostics go to stderr. Exit codes are `ExitCode`.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from doctor import __version__
from doctor.live.cli_options import add_live_arguments, live_diagnosis

logger = logging.getLogger(__name__)


class ExitCode(enum.IntEnum):
    """Exit codes of the headless commands.

    OK: the scan finished, a cause is named and every needed check ran.
    INTERNAL_ERROR: Mesh Doctor itself failed, and the message names the step that failed.
    USAGE: the command line is invalid.
    INCOMPLETE: a cause is named, but some checks could not run (see coverage).
    NO_CAUSE: the scan finished, but no cause is supported by the evidence read.
    RULES_INVALID: a rule or playbook file is invalid; the message names file and line.
    NO_INPUT: none of the given paths could be read.
    INTERRUPTED: the engineer pressed Ctrl-C (128 + SIGINT, as shells report it).
    """

    OK = 0
    INTERNAL_ERROR = 1
    USAGE = 2
    INCOMPLETE = 3
    NO_CAUSE = 4
    RULES_INVALID = 5
    NO_INPUT = 6
    INTERRUPTED = 130


FORMATS = ("text", "json", "md")

# Subcommands defined in doctor/commands/, as (name, module, one-line help).
EXTRA_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("lab", "doctor.commands.lab", "run a real Envoy mesh on 127.0.0.1, inject faults and capture bundles"),
    ("logs", "doctor.commands.logs", "summarize Envoy access logs (plain or gzip) in a time window"),
    ("sessions", "doctor.commands.sessions", "list guided sessions; resume one with `resume ID`"),
    ("resume", "doctor.commands.resume", "continue a guided session where it stopped"),
    ("report", "doctor.commands.report", "write the incident summary of a session or a scan (md, json, html)"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mesh-doctor",
        description="Diagnose API security failures in an Istio/Envoy service mesh.",
    )
    parser.add_argument("--version", action="version", version=f"mesh-doctor {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debugging detail to stderr")
    commands = parser.add_subparsers(dest="command")

    scan = commands.add_parser(
        "scan", help="diagnose evidence files, folders, bundles or .tar.gz archives")
    scan.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                      help="evidence: files, folders, bundles or .tar.gz archives")
    scan.add_argument("--format", choices=FORMATS, default="text",
                      help="output format (default: text); json is the machine contract")
    scan.add_argument("-o", "--output", type=Path,
                      help="write the report to this file instead of stdout")
    scan.add_argument("--rules", type=Path, help="a folder of rule files to use instead of "
                      "the shipped ones")
    add_live_arguments(scan)

    tui = commands.add_parser("tui", help="open the terminal UI on evidence (the default "
                              "command when only paths are given)")
    tui.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                     help="evidence to read; without any, a symptom form starts a live collection")
    tui.add_argument("--read-only", action="store_true",
                     help="refuse every mutating playbook step in guided sessions")

    for name, module_name, summary in EXTRA_COMMANDS:
        extra = commands.add_parser(name, help=summary)
        extra.set_defaults(command_module=module_name)
        importlib.import_module(module_name).add_arguments(extra)

    rules = commands.add_parser("rules", help="validate and list the rule files")
    rules.add_argument("--rules", type=Path, help="a folder of rule files to validate")
    rules.add_argument("--markdown", action="store_true",
                       help="print the rules reference as Markdown (the source of docs/rules.md)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader of stdout went away (`| head`); that is not an error of ours.
        sys.stderr.close()
        return ExitCode.OK
    except KeyboardInterrupt:
        print("mesh-doctor: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    # numpy starts one OpenBLAS thread per CPU at import, and they spin for a
    # while even though Mesh Doctor does no linear algebra. On two CPUs they
    # took about 0.1 s of CPU time from the log-scanning workers.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    arguments = list(sys.argv[1:] if argv is None else argv)
    known = {"scan", "tui", "rules", "-h", "--help", "--version", "-v", "--verbose"}
    known.update(name for name, _, _ in EXTRA_COMMANDS)
    if arguments and arguments[0] not in known:
        arguments.insert(0, "tui")

    parser = build_parser()
    options = parser.parse_args(arguments)
    level = logging.DEBUG if options.verbose else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    # sh's DEBUG records carry raw argv (secrets included), so it never logs below INFO.
    logging.getLogger("sh").setLevel(max(logging.INFO, level))

    if options.command is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    if options.command == "scan":
        return _scan(options)
    if options.command == "tui":
        return _tui(options)
    if getattr(options, "command_module", None):
        return importlib.import_module(options.command_module).run(options)
    return _rules(options)


def _scan(options: argparse.Namespace) -> int:
    from doctor.report import render_json, render_markdown, render_text
    from doctor.rules import RuleLoadError
    from doctor.scan import load_engine, scan_paths

    try:
        engine = load_engine(options.rules)
    except RuleLoadError as error:
        print(f"mesh-doctor: invalid rules\n{error}", file=sys.stderr)
        return ExitCode.RULES_INVALID

    if options.live or not options.paths:
        diagnosis = live_diagnosis(options, engine)
        if isinstance(diagnosis, int):
            return diagnosis
    else:
        diagnosis = scan_paths(options.paths, engine=engine)
    renderer = {"text": render_text, "json": render_json, "md": render_markdown}[options.format]
    output = renderer(diagnosis)

    if options.output:
        try:
            options.output.write_text(output, encoding="utf-8")
        except OSError as error:
            print(f"mesh-doctor: cannot write {options.output}: {error.strerror}",
                  file=sys.stderr)
            return ExitCode.INTERNAL_ERROR
        print(f"wrote {options.output}", file=sys.stderr)
    else:
        sys.stdout.write(output)

    if not diagnosis.inputs:
        for item in diagnosis.skipped:
            print(f"mesh-doctor: skipped {item.source}: {item.reason}", file=sys.stderr)
        return ExitCode.NO_INPUT
    if diagnosis.top is None:
        return ExitCode.NO_CAUSE
    if diagnosis.coverage.not_checked:
        return ExitCode.INCOMPLETE
    return ExitCode.OK


def _tui(options: argparse.Namespace) -> int:
    from doctor.rules import RuleLoadError
    from doctor.scan import load_engine
    from doctor.tui.app import build_app

    try:
        load_engine()
    except RuleLoadError as error:
        print(f"mesh-doctor: invalid rules\n{error}", file=sys.stderr)
        return ExitCode.RULES_INVALID
    from doctor.session import load_production_contexts
    from doctor.tui.app import SessionOptions

    production, problems = load_production_contexts()
    for problem in problems:
        print(f"mesh-doctor: {problem.source}: {problem.message}", file=sys.stderr)
    build_app(options.paths, read_only=options.read_only,
              sessions=SessionOptions(production_contexts=production,
                                      symptom_form=not options.paths)).run()
    return ExitCode.OK


def _rules(options: argparse.Namespace) -> int:
    from doctor.playbooks import check_playbook_links, load_playbooks
    from doctor.rules import RuleLoadError
    from doctor.scan import load_engine

    try:
        engine = load_engine(options.rules)
        playbooks = load_playbooks()
    except RuleLoadError as error:
        print(f"mesh-doctor: invalid rules\n{error}", file=sys.stderr)
        return ExitCode.RULES_INVALID

    problems = check_playbook_links(engine.rulebook, playbooks)
    for problem in problems:
        print(f"mesh-doctor: {problem}", file=sys.stderr)

    book = engine.rulebook
    if options.markdown:
        from doctor.rules_doc import render_rules_markdown

        sys.stdout.write(render_rules_markdown(book, playbooks))
        return ExitCode.RULES_INVALID if problems else ExitCode.OK

    print(f"{len(book.symptoms)} symptoms, {len(book.causes)} causes, "
          f"{len(book.signatures)} signatures, {len(playbooks)} playbooks")
    for cause in sorted(book.causes.values(), key=lambda cause: cause.id):
        parents = ", ".join(cause.symptoms + cause.explains)
        print(f"  {cause.id:<36} <- {parents}")
    return ExitCode.RULES_INVALID if problems else ExitCode.OK
