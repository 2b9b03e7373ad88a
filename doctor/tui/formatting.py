"""Text shown by the screens: status labels, time ranges, chains and locations.

Pure functions of the diagnosis records, so the screens stay thin and the
wording is tested once.
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable

from rich.text import Text

from doctor.diagnosis import CauseStatus, Diagnosis, Finding, NotChecked
from doctor.model import Evidence
from doctor.playbooks import Playbook, Step
from doctor.tui.sources import ARCHIVE_SUFFIXES

STATUS_STYLES: dict[CauseStatus, str] = {
    CauseStatus.CONFIRMED: "bold red",
    CauseStatus.LIKELY: "bold dark_orange",
    CauseStatus.POSSIBLE: "yellow",
    CauseStatus.UNKNOWN: "cyan",
    CauseStatus.RULED_OUT: "dim",
}

STATUS_LABELS: dict[CauseStatus, str] = {
    CauseStatus.CONFIRMED: "confirmed",
    CauseStatus.LIKELY: "likely",
    CauseStatus.POSSIBLE: "possible",
    CauseStatus.UNKNOWN: "unknown",
    CauseStatus.RULED_OUT: "ruled out",
}

CHECK_RESULT_STYLES = {"hit": "bold", "miss": "dim", "unknown": "cyan"}

CHAIN_ARROW = " → "


def status_text(status: CauseStatus) -> Text:
    """Label a status in its colour; text appended later keeps its own style."""
    return Text.assemble((STATUS_LABELS[status], STATUS_STYLES[status]), justify="left")


def score_text(score: float) -> str:
    return f"{score:.2f}"


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """Format `count noun` with the plural form when count is not 1."""
    word = noun if count == 1 else (plural_noun or f"{noun}s")
    return f"{count} {word}"


def time_range(first: datetime | None, last: datetime | None) -> str:
    """Format the span in which a symptom was seen, with its duration."""
    if first is None and last is None:
        return "time not recorded"
    if first is None or last is None or first == last:
        moment = first or last
        assert moment is not None
        return _moment(moment)

    if first.date() == last.date():
        end = last.strftime("%H:%M:%S") + _zone(last)
    else:
        end = _moment(last)
    return f"{_moment(first)} → {end} ({duration(last - first)})"


def duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _moment(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") + _zone(moment)


def _zone(moment: datetime) -> str:
    if moment.tzinfo is None:
        return ""
    offset = moment.utcoffset()
    if offset == timedelta(0):
        return "Z"
    return moment.strftime("%z")


def chain_labels(diagnosis: Diagnosis) -> dict[str, str]:
    """Map every symptom and cause id in the diagnosis to its title."""
    labels = {symptom.symptom_id: symptom.title for symptom in diagnosis.symptoms}
    for finding in diagnosis.findings:
        labels[finding.cause_id] = finding.title
    return labels


def chain_text(chain: Iterable[str]) -> str:
    """Format a causal chain of ids, symptom first, as `a → b → c`."""
    return CHAIN_ARROW.join(chain)


def location(source: str, line: int | None) -> str:
    """Format `source:line`, or the source alone when no line applies."""
    if line is None:
        return source
    return f"{source}:{line}"


def evidence_location(evidence: Evidence) -> str:
    return location(evidence.source, evidence.line)


def sources_line(paths: Iterable[Path], diagnosis: Diagnosis | None) -> str:
    """Describe what was read: the paths given and, once scanned, the inputs by kind."""
    named = ", ".join(str(path) for path in paths) or "no paths"
    if diagnosis is None:
        return f"Reading {named} …"

    kinds: dict[str, int] = {}
    for item in diagnosis.inputs:
        kinds[item.kind] = kinds.get(item.kind, 0) + 1
    by_kind = ", ".join(f"{kind} ×{count}" for kind, count in sorted(kinds.items()))
    summary = plural(len(diagnosis.inputs), "input")
    if by_kind:
        summary = f"{summary}: {by_kind}"
    return f"Read {named} — {summary}"


def coverage_banner(not_checked: tuple[NotChecked, ...]) -> str:
    count = len(not_checked)
    verb = "check could" if count == 1 else "checks could"
    return f"{count} {verb} not run — see coverage (press c)"


def problems_line(diagnosis: Diagnosis) -> str:
    """Count parse problems and skipped files, or state that every input was read cleanly."""
    problems = len(diagnosis.parse_problems)
    skipped = len(diagnosis.skipped)
    if problems == 0 and skipped == 0:
        return "Every input was read without parse problems."
    counts = f"{plural(problems, 'parse problem')} · {plural(skipped, 'skipped file')}"
    return f"{counts} — press p to see them"


def finding_matches(finding: Finding, needle: str) -> bool:
    """Return whether a finding's status, id, title or chain contains `needle`, ignoring case."""
    if not needle:
        return True
    haystack = " ".join(
        (STATUS_LABELS[finding.status], finding.cause_id, finding.title, " ".join(finding.chain))
    )
    return needle.casefold() in haystack.casefold()


def report_file_name(moment: datetime) -> str:
    """Name the Markdown export after the time it was written, to the second."""
    return moment.strftime("mesh-doctor-report-%Y%m%d-%H%M%S.md")


def command_line(argv: Iterable[str]) -> str:
    """Show an argv list as one line, quoting only the arguments that contain spaces.

    `{placeholders}` stay visible as they are, for the engineer to fill in.
    """
    parts = []
    for argument in argv:
        if not argument or any(character.isspace() for character in argument) or "'" in argument:
            parts.append(shlex.quote(argument))
        else:
            parts.append(argument)
    return " ".join(parts)


def playbook_text(playbook: Playbook) -> Text:
    """Render a playbook's steps in order, each with its kind, commands and links."""
    text = Text()
    text.append(playbook.title, style="bold")
    text.append(f"  (playbook {playbook.id}, {playbook.source})\n", style="dim")
    for number, step in enumerate(playbook.steps, start=1):
        text.append(f"\n{number}. ", style="bold")
        text.append(f"[{step.kind}] ", style=STEP_KIND_STYLES.get(step.kind, ""))
        text.append(f"{step.title}\n")
        _append_step_body(text, step)
    return text


STEP_KIND_STYLES = {"check": "cyan", "ask": "magenta", "remediate": "bold red", "note": "dim"}


def _append_step_body(text: Text, step: Step) -> None:
    indent = "   "
    if step.kind == "ask":
        if step.question and step.question != step.title:
            text.append(f"{indent}{step.question}\n")
        for answer in step.answers:
            target = f" → step {answer.next}" if answer.next else ""
            text.append(f"{indent}• {answer.label}{target}\n")
        return

    if step.kind == "remediate" and step.dry_run:
        text.append(f"{indent}dry run:  ", style="dim")
        text.append(f"$ {command_line(step.dry_run)}\n", style="green")
    if step.command:
        label = "change:   " if step.kind == "remediate" else "run:      "
        text.append(f"{indent}{label}", style="dim")
        text.append(f"$ {command_line(step.command)}\n", style="green")
    if step.kind == "remediate" and step.rollback:
        text.append(f"{indent}rollback: ", style="dim")
        text.append(f"$ {command_line(step.rollback)}\n", style="green")
    if step.look_for:
        text.append(f"{indent}look for: ", style="dim")
        text.append(f"{step.look_for.strip()}\n")
    if step.verify:
        text.append(f"{indent}verify:   ", style="dim")
        text.append(f"step {step.verify}\n")
    if step.text:
        text.append(f"{indent}{step.text.strip()}\n")
    for link in step.links:
        text.append(f"{indent}{link}\n", style="underline")


def source_root(diagnosis: Diagnosis) -> str:
    """Find the folder all inputs share, so screens can show short, unambiguous names.

    A source inside an archive (`archive.tar.gz:member`) counts as its archive.
    Returns "" when the inputs share no folder.
    """
    files = [_archive_or_file(item.source) for item in diagnosis.inputs]
    files += [_archive_or_file(item.source) for item in diagnosis.skipped]
    if not files:
        return ""
    try:
        common = os.path.commonpath(files)
    except ValueError:  # absolute and relative paths mixed
        return ""
    if common in files:
        common = os.path.dirname(common)
    return common


def short_source(source: str, root: str) -> str:
    """Show `source` relative to `root`, or whole when it lies elsewhere."""
    if root and source.startswith(root.rstrip("/") + "/"):
        return source[len(root.rstrip("/")) + 1:]
    return source


def _archive_or_file(source: str) -> str:
    for suffix in ARCHIVE_SUFFIXES:
        position = source.find(f"{suffix}:")
        if position != -1:
            return source[: position + len(suffix)]
    return source
