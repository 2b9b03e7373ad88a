"""Render a diagnosis as JSON (the machine contract), Markdown or plain text.

Every rendering starts with the checks that could not run when there are any,
because a report with unknowns must say so before it names a cause.
"""

from __future__ import annotations

import json

from doctor.diagnosis import CauseStatus, Diagnosis
from doctor.model import Evidence
from doctor.redact import redact_text, redact_values
from doctor.summary_values import shorten

MAX_FINDINGS_IN_TEXT = 8
MAX_EVIDENCE_IN_TEXT = 6
MAX_NOT_CHECKED_IN_TEXT = 5
ACTIVE = (CauseStatus.CONFIRMED, CauseStatus.LIKELY, CauseStatus.POSSIBLE)


def render_json(diagnosis: Diagnosis) -> str:
    # Redact each string value, not the serialised text, so a mask can never break the JSON.
    return json.dumps(redact_values(diagnosis.to_dict()), indent=2, ensure_ascii=False) + "\n"


def render_markdown(diagnosis: Diagnosis) -> str:
    lines: list[str] = ["# Mesh Doctor incident summary", ""]
    if diagnosis.generated_at:
        lines += [f"Generated {diagnosis.generated_at.isoformat(timespec='seconds')}.", ""]

    lines += _unknowns_banner(diagnosis, markdown=True)

    lines += ["## Symptoms", ""]
    if diagnosis.symptoms:
        for symptom in diagnosis.symptoms:
            lines.append(f"- **{symptom.title}** (`{symptom.symptom_id}`): {symptom.count} seen"
                         + _time_span(symptom.first_seen, symptom.last_seen))
    else:
        lines.append("No symptom was found in the inputs.")
    lines.append("")

    top = diagnosis.top
    lines += ["## Root cause", ""]
    if top is None:
        lines += ["No cause is supported by the evidence read.", ""]
    else:
        lines += [f"**{top.title}** (`{top.cause_id}`, {top.status.value}, "
                  f"score {top.score:.2f})", "", top.summary, "",
                  "Causal chain: " + " → ".join(f"`{step}`" for step in top.chain), ""]
        lines += ["### Evidence", ""]
        lines += [_evidence_markdown(item) for item in top.evidence] or ["(none cited)"]
        lines += ["", "### Remediation", "", top.remediation, ""]
        if top.playbook:
            lines += [f"Guided steps: playbook `{top.playbook}`.", ""]

    others = [finding for finding in diagnosis.findings if finding is not top]
    if others:
        lines += ["## Other hypotheses", "", "| rank | cause | status | score |",
                  "| --- | --- | --- | --- |"]
        for rank, finding in enumerate(diagnosis.findings, start=1):
            if finding is top:
                continue
            lines.append(f"| {rank} | {finding.title} (`{finding.cause_id}`) | "
                         f"{finding.status.value} | {finding.score:.2f} |")
        lines.append("")

    lines += ["## Checks not performed", ""]
    if diagnosis.coverage.not_checked:
        for item in diagnosis.coverage.not_checked:
            cause = f" for `{item.cause_id}`" if item.cause_id else ""
            lines.append(f"- `{item.check_id}`{cause}: {item.reason}")
    else:
        lines.append("Every check needed for the symptoms found could run.")
    lines.append("")

    lines += _problems_markdown(diagnosis)
    lines += ["## Inputs", ""]
    for item in diagnosis.inputs:
        lines.append(f"- `{item.source}`: {item.kind} ({item.facts} facts)")
    lines.append("")
    return redact_text("\n".join(lines))


def render_text(diagnosis: Diagnosis) -> str:
    """Render a plain-text report for terminals and logs."""
    lines: list[str] = []
    lines += _unknowns_banner(diagnosis, markdown=False)
    not_checked = diagnosis.coverage.not_checked
    for item in not_checked[:MAX_NOT_CHECKED_IN_TEXT]:
        cause = f"{item.cause_id}: " if item.cause_id else ""
        lines.append(f"  {cause}{item.check_id}: {shorten(item.reason, 200)}")
    if len(not_checked) > MAX_NOT_CHECKED_IN_TEXT:
        lines.append(f"  … and {len(not_checked) - MAX_NOT_CHECKED_IN_TEXT} more "
                     "(see --format md or json)")
    if not_checked:
        lines.append("")

    if diagnosis.symptoms:
        lines.append("Symptoms:")
        for symptom in diagnosis.symptoms:
            lines.append(f"  {symptom.symptom_id:<24} {symptom.count:>6}  {symptom.title}"
                         + _time_span(symptom.first_seen, symptom.last_seen))
    else:
        lines.append("Symptoms: none found in the inputs.")
    lines.append("")

    shown = [finding for finding in diagnosis.findings if finding.status in ACTIVE]
    lines.append("Findings:" if shown else "Findings: no cause is supported by the evidence read.")
    for rank, finding in enumerate(shown[:MAX_FINDINGS_IN_TEXT], start=1):
        lines.append(f"  {rank}. [{finding.status.value}] {finding.title} ({finding.cause_id}), "
                     f"score {finding.score:.2f}")
        lines.append(f"     chain: {' -> '.join(finding.chain)}")
        for item in finding.evidence[:MAX_EVIDENCE_IN_TEXT]:
            mark = "+" if item.supports else "-"
            location = f"{item.source}:{item.line}" if item.line else item.source
            lines.append(f"     {mark} {location}: {shorten(item.text, 160)}")
        if rank == 1:
            lines.append(f"     fix: {finding.remediation}")
    ruled_out = [finding.cause_id for finding in diagnosis.findings
                 if finding.status == CauseStatus.RULED_OUT]
    if ruled_out:
        lines += ["", "Ruled out: " + ", ".join(ruled_out)]

    if diagnosis.parse_problems or diagnosis.skipped:
        lines += ["", f"Inputs: {len(diagnosis.inputs)} read, {len(diagnosis.skipped)} skipped, "
                      f"{len(diagnosis.parse_problems)} parse problems (see --format json)"]
        for item in diagnosis.skipped:
            lines.append(f"  skipped {item.source}: {item.reason}")
    return redact_text("\n".join(lines) + "\n")


def _unknowns_banner(diagnosis: Diagnosis, *, markdown: bool) -> list[str]:
    not_checked = diagnosis.coverage.not_checked
    if not not_checked:
        return []
    causes = sorted({item.cause_id for item in not_checked if item.cause_id})
    text = (f"{len(not_checked)} check(s) could not run, so {len(causes)} cause(s) could not "
            "be fully judged; a cause marked unknown is not healthy.")
    return [f"> **Warning:** {text}", ""] if markdown else [f"WARNING: {text}"]


def _problems_markdown(diagnosis: Diagnosis) -> list[str]:
    if not diagnosis.parse_problems and not diagnosis.skipped:
        return []
    lines = ["## Inputs not fully read", ""]
    for item in diagnosis.skipped:
        lines.append(f"- skipped `{item.source}`: {item.reason}")
    for problem in diagnosis.parse_problems[:50]:
        location = f"{problem.source}:{problem.line}" if problem.line else problem.source
        lines.append(f"- `{location}`: {problem.message}")
    if len(diagnosis.parse_problems) > 50:
        lines.append(f"- … and {len(diagnosis.parse_problems) - 50} more parse problems")
    lines.append("")
    return lines


def _evidence_markdown(item: Evidence) -> str:
    location = f"{item.source}:{item.line}" if item.line else item.source
    stance = "supports" if item.supports else "argues against"
    note = f" ({item.note})" if item.note else ""
    return f"- {stance}, `{location}`{note}:\n  `{shorten(item.text, 300)}`"


def _time_span(first, last) -> str:
    if first is None:
        return ""
    if last is None or last == first:
        return f", at {first.isoformat()}"
    return f", from {first.isoformat()} to {last.isoformat()}"

