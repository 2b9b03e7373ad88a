"""Text shown by the screens: status labels, time ranges, chains and locations.

Pure functions of the diagnosis records, so the screens stay thin and the
wording is tested once.
"""

from __future__ import annotations

import os
import re
import shlex
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from doctor.diagnosis import CauseStatus, Diagnosis, Finding, NotChecked
from doctor.model import Evidence
from doctor.playbooks import Playbook, Step
from doctor.readers import ARCHIVE_SUFFIXES
from doctor.session import placeholders_in

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
    if last - first < timedelta(seconds=1):
        return f"{_moment(first)}, all within {duration(last - first)}"

    if first.date() == last.date():
        end = last.strftime("%H:%M:%S") + _zone(last)
    else:
        end = _moment(last)
    return f"{_moment(first)} → {end} ({duration(last - first)})"


def duration(span: timedelta) -> str:
    if span < timedelta(seconds=1):
        return f"{span // timedelta(milliseconds=1)}ms"
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


def shorten_middle(text: str, width: int) -> str:
    """Cut `text` to `width` cells in the middle, so a path keeps its first folder and its line.

    Numbered observation files differ in their first characters and cited
    lines in their last, so both ends stay.
    """
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) * 2 // 5
    tail = width - 1 - head
    return text[:head] + "…" + text[len(text) - tail:]


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


def report_file_name(moment: datetime, suffix: str = ".md") -> str:
    """Name the export after the time it was written, to the second."""
    return moment.strftime("mesh-doctor-report-%Y%m%d-%H%M%S") + suffix


_SHELL_SPECIAL = set("'\"\\$`*?[]|&;<>()!#~")
# Text a shell keeps as it is inside double quotes: no `"`, `$`, backquote or `!`
# (history expansion), and no backslash before one of those, another backslash or the end.
_DOUBLE_QUOTE_SAFE = re.compile(r'(?:[^"$`!\\]|\\[^"$`!\\\n])*')


def command_line(argv: Iterable[str]) -> str:
    """Show an argv list as one shell-like line that a reader can copy.

    Arguments with spaces or characters a shell would expand are quoted, in
    double quotes when that reads better than shell escaping. `{placeholders}` stay as they are, for
    the engineer to fill in.
    """
    return " ".join(_quote(argument) for argument in argv)


def _quote(argument: str) -> str:
    if argument and not any(character.isspace() or character in _SHELL_SPECIAL for character in argument):
        return argument
    if "'" not in argument:
        return f"'{argument}'"
    if _DOUBLE_QUOTE_SAFE.fullmatch(argument):
        return f'"{argument}"'
    return shlex.quote(argument)


def placeholders(playbook: Playbook) -> list[str]:
    """List the `{placeholders}` the playbook's commands use, in order of first use.

    The names are the ones the guided session fills, so a kubectl JSONPath
    `{end}` or `{.field}` is not listed, while a `{pod}` next to it is.
    """
    return placeholders_in([argument for step in playbook.steps
                            for argument in (*step.command, *step.dry_run, *step.rollback)])

STEP_KIND_STYLES = {"check": "cyan", "ask": "magenta", "remediate": "bold red", "note": "dim"}


def playbook_view(playbook: Playbook) -> Group:
    """Render a playbook's steps in order, each with its kind, commands, checks and links."""
    heading = Text()
    heading.append(playbook.title, style="bold")
    heading.append(f"  (playbook {playbook.id})", style="dim")
    parts: list[RenderableType] = [heading]

    names = placeholders(playbook)
    if names:
        listed = ", ".join("{" + name + "}" for name in names)
        parts.append(Text(f"Replace {listed} with the names in the evidence above.", style="dim"))

    for number, step in enumerate(playbook.steps, start=1):
        title = Text(f"\n{number}. ", style="bold")
        title.append(f"[{step.kind}] ", style=STEP_KIND_STYLES.get(step.kind, ""))
        title.append(step.title)
        parts.append(title)
        parts.append(Padding(_step_body(step), (0, 0, 0, 3)))
    return Group(*parts)


def _step_body(step: Step) -> Table:
    body = Table.grid(padding=(0, 1))
    body.add_column(style="dim", no_wrap=True)
    body.add_column()

    if step.kind == "ask":
        if step.question and step.question != step.title:
            body.add_row("", Text(step.question))
        for answer in step.answers:
            target = f" → step {answer.next}" if answer.next else ""
            body.add_row("•", Text(f"{answer.label}{target}"))
        return body

    if step.kind == "remediate" and step.dry_run:
        body.add_row("dry run:", Text(f"$ {command_line(step.dry_run)}", style="green"))
    if step.command:
        label = "change:" if step.kind == "remediate" else "run:"
        body.add_row(label, Text(f"$ {command_line(step.command)}", style="green"))
    if step.kind == "remediate" and step.rollback:
        body.add_row("rollback:", Text(f"$ {command_line(step.rollback)}", style="green"))
    if step.look_for:
        body.add_row("look for:", Text(step.look_for.strip()))
    if step.verify:
        body.add_row("verify:", Text(f"step {step.verify}"))
    if step.text:
        body.add_row("", Text(step.text.strip()))
    for link in step.links:
        body.add_row("", Text(link, style="underline"))
    return body


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
