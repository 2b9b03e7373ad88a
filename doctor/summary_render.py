"""Render the incident summary as Markdown, JSON or one self-contained HTML file.

Every renderer takes the redacted `IncidentSummary.to_dict()` form, so the
three formats show the same facts and none of them can skip redaction. The
Markdown pastes into tickets and chat (plain tables, lists and code spans,
no HTML). The HTML needs no network: its CSS is inline, the error-rate
timeline is an inline SVG chart and the causal chain an inline SVG diagram.
"""

from __future__ import annotations

import html
import json
import textwrap
from typing import Any, Mapping, Sequence

from doctor.redact import redact_text
from doctor.summary_values import argv_text

FORMATS = ("md", "json", "html")
SUFFIXES = {"md": ".md", "json": ".json", "html": ".html"}

# Colours of the HTML chart; tests look for the failure colour in a screenshot.
FAILED_COLOUR = "#d32f2f"
REQUESTS_COLOUR = "#b0bec5"
RATE_COLOUR = "#1565c0"

MARKDOWN_EVIDENCE = 5
MARKDOWN_EVIDENCE_CHARACTERS = 200
CHART_WIDTH = 760
CHART_HEIGHT = 240
_PLOT_LEFT = 56
_PLOT_RIGHT = 56
_PLOT_TOP = 16
_PLOT_BOTTOM = 40


def render(data: Mapping[str, Any], output_format: str) -> str:
    """Render `data` (a summary's `to_dict()`) in one of FORMATS."""
    renderers = {"md": render_markdown, "json": render_json, "html": render_html}
    if output_format not in renderers:
        raise ValueError(f"unknown report format {output_format!r}; expected one of "
                         f"{', '.join(FORMATS)}")
    return renderers[output_format](data)


def render_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


# --- Markdown ------------------------------------------------------------------


def render_markdown(data: Mapping[str, Any]) -> str:
    """Render the summary as Markdown for a ticket or a chat message."""
    header = data["header"]
    lines = [f"# Incident {header['incident_id']}: {header['title']}", ""]
    lines += _markdown_header(header, data)
    lines += ["## Summary", "", data["summary"], ""]
    lines += _markdown_milestones(data)
    lines += _markdown_symptom(data["symptom"])
    lines += _markdown_impact(data["impact"])
    lines += _markdown_root_cause(data)
    lines += _markdown_hypotheses(data["hypotheses"])
    lines += _markdown_resolution(data["resolution"])
    lines += _markdown_timeline(data["timeline"])
    lines += _markdown_checks(data)
    lines += _markdown_action_items(data["action_items"])
    lines += ["## Handoff", "", data["handoff"], ""]
    lines += _markdown_footer(data)
    return redact_text("\n".join(lines).rstrip("\n") + "\n")


def _markdown_header(header: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
    rows = [
        ("Severity", header["severity"]), ("Status", header["status"]),
        ("Kube context", header.get("kube_context") or "not recorded"),
        ("Cluster", header.get("cluster") or "not recorded"),
        ("Namespaces", ", ".join(header["namespaces"]) or "none found"),
        ("Services", ", ".join(header["services"]) or "none found"),
        ("Mesh version", header.get("mesh_version") or "not found in the inputs"),
        ("Tool", header["tool_version"]),
        ("Built from", _source_text(data["source"])),
        ("Generated", data["generated_at"]),
    ]
    lines = ["| field | value |", "| --- | --- |"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows]
    lines.append("")
    if data.get("problems"):
        lines += ["> **Note:** " + problem for problem in data["problems"]]
        lines.append("")
    return lines


def _source_text(source: Mapping[str, Any]) -> str:
    if source["kind"] == "session":
        return f"session {source['session_id']}"
    return "one-shot scan of " + ", ".join(source["paths"])


def _markdown_milestones(data: Mapping[str, Any]) -> list[str]:
    lines = ["## Milestones (UTC)", "", "| milestone | time | based on |", "| --- | --- | --- |"]
    for item in data["milestones"]:
        lines.append(f"| {item['name']} | {item['at'] or '—'} | {_cell(item['basis'])} |")
    lines.append("")
    if data["durations"]:
        lines.append("Durations: " + "; ".join(
            f"{item['name']} ({item['from']} → {item['to']}) {item['text']}"
            for item in data["durations"]) + ".")
        lines.append("")
    return lines


def _markdown_symptom(symptom: Mapping[str, Any]) -> list[str]:
    lines = ["## Symptom", ""]
    if not symptom["ids"]:
        return lines + ["No known symptom was found in the inputs.", ""]
    lines.append(f"- **What:** {', '.join(symptom['titles'])} ({symptom['count']} occurrences, "
                 f"{symptom['first_seen'] or '?'} to {symptom['last_seen'] or '?'})")
    for label, key in (("Response codes", "response_codes"), ("Response flags", "response_flags"),
                       ("Response details", "response_code_details")):
        if symptom[key]:
            lines.append(f"- **{label}:** " + ", ".join(_counted_text(item) for item in symptom[key]))
    hop = symptom.get("hop")
    if hop:
        lines.append(f"- **Hop:** {hop['caller']} → {hop['callee']} "
                     f"(cluster `{hop.get('upstream_cluster') or '-'}`, "
                     f"upstream host `{hop.get('upstream_host') or '-'}`)")
    if symptom.get("first_failing_path"):
        lines.append(f"- **First failing path:** `{symptom['first_failing_path']}`")
    if symptom.get("first_failure"):
        lines.append(f"- **First failure:** {_evidence_link(symptom['first_failure'])}")
    return lines + [""]


def _counted_text(item: Mapping[str, Any]) -> str:
    side = f" at the {_side(item.get('direction'))}" if item.get("direction") else ""
    return f"`{item['value']}` ×{item['count']}{side}"


def _side(direction: str | None) -> str:
    return {"outbound": "caller", "inbound": "callee"}.get(direction or "", direction or "")


def _markdown_impact(impact: Mapping[str, Any]) -> list[str]:
    lines = ["## Impact", ""]
    if not impact["measured"]:
        return lines + [f"Not measured: {impact['reason']}.", ""]
    lines.append(f"{impact['failed_requests']} of {impact['requests']} requests failed "
                 f"({impact['error_rate'] * 100:.1f}%), first at {impact['first_failure']}, "
                 f"last at {impact['last_failure']} (counted from {impact['basis']}).")
    if impact.get("peak"):
        peak = impact["peak"]
        lines.append(f"Peak: {peak['error_rate'] * 100:.0f}% ({peak['failed']} of "
                     f"{peak['requests']}) in the {impact['bucket_seconds']} s from {peak['start']}.")
    lines.append("")
    if impact["series"]:
        lines += [f"Error rate per {impact['bucket_seconds']} s:", "",
                  "| from (UTC) | requests | failed | error rate |", "| --- | --- | --- | --- |"]
        for point in _trimmed(impact["series"], 30):
            if point is None:
                lines.append("| … | | | |")
                continue
            lines.append(f"| {point['start']} | {point['requests']} | {point['failed']} | "
                         f"{point['error_rate'] * 100:.0f}% {_bar(point['error_rate'])} |")
        lines.append("")
    if impact["affected_workloads"]:
        lines.append("Affected workloads: " + ", ".join(
            f"{item['workload']} ({item['role']}, {item['failed']} failed)"
            for item in impact["affected_workloads"]) + ".")
        lines.append("")
    return lines


def _trimmed(series: Sequence[Mapping[str, Any]], limit: int) -> list[Mapping[str, Any] | None]:
    """Keep the buckets with failures and their neighbours when the series is long."""
    if len(series) <= limit:
        return list(series)
    keep = set()
    for index, point in enumerate(series):
        if point["failed"]:
            keep.update({index - 1, index, index + 1})
    kept: list[Mapping[str, Any] | None] = []
    for index, point in enumerate(series):
        if index in keep:
            kept.append(point)
        elif kept and kept[-1] is not None:
            kept.append(None)
    return kept[: limit * 2]


def _bar(rate: float) -> str:
    return "█" * round(rate * 10)


def _markdown_root_cause(data: Mapping[str, Any]) -> list[str]:
    root = data["root_cause"]
    lines = ["## Root cause", ""]
    if root is None:
        return lines + ["No cause is supported by the evidence read.", ""]
    lines += [f"**{root['title']}** (`{root['cause_id']}`, {root['status']}, score "
              f"{root['score']:.2f})", "", root["summary"], ""]
    if data["causal_chain"]:
        lines += ["Causal chain: " + " → ".join(
            f"{node['title']} (`{node['id']}`)" for node in data["causal_chain"]), ""]
    if data["contributing_factors"]:
        lines += ["Contributing factors:", ""]
        lines += [f"- {item['title']} (`{item['cause_id']}`, {item['status']})"
                  for item in data["contributing_factors"]]
        lines.append("")
    else:
        lines += ["Contributing factors: none confirmed or likely outside the chain.", ""]
    return lines


def _markdown_hypotheses(hypotheses: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## Hypotheses", ""]
    if not hypotheses:
        return lines + ["No hypothesis was ranked.", ""]
    lines += ["| rank | cause | status | score | for | against |",
              "| --- | --- | --- | --- | --- | --- |"]
    for item in hypotheses:
        lines.append(f"| {item['rank']} | {_cell(item['title'])} (`{item['cause_id']}`) | "
                     f"{item['status']} | {item['score']:.2f} | {len(item['evidence_for'])} | "
                     f"{len(item['evidence_against'])} |")
    lines.append("")
    # Evidence is listed for the causes still in play; the JSON form has all of it.
    for item in hypotheses:
        if item["status"] not in ("confirmed", "likely", "possible"):
            continue
        if not item["evidence_for"] and not item["evidence_against"]:
            continue
        lines += [f"### {item['rank']}. {item['title']} ({item['status']})", ""]
        cited = [("for", ref) for ref in item["evidence_for"]] + \
            [("against", ref) for ref in item["evidence_against"]]
        for stance, evidence in cited[:MARKDOWN_EVIDENCE]:
            lines.append(f"- {stance}: {_evidence_link(evidence)}")
        omitted = len(cited) - MARKDOWN_EVIDENCE + item["evidence_omitted"]
        if omitted > 0:
            lines.append(f"- … {omitted} more in the JSON form")
        lines.append("")
    return lines


def _markdown_resolution(resolution: Mapping[str, Any]) -> list[str]:
    lines = ["## Resolution", "", f"State: **{resolution['state']}**.", ""]
    if resolution.get("remediation"):
        lines += [resolution["remediation"], ""]
    for label, key in (("Change", "change"), ("Dry run", "dry_run"), ("Rollback", "rollback")):
        if resolution.get(key):
            lines += [f"{label}:", "", "```sh", argv_text(resolution[key]), "```", ""]
    details = []
    if resolution.get("confirmed_by"):
        details.append(f"confirmed by {resolution['confirmed_by']} at {resolution['confirmed_at']}")
    if resolution.get("applied_at"):
        details.append(f"applied at {resolution['applied_at']} (exit status "
                       f"{resolution['exit_status']})")
    verification = resolution.get("verification")
    if verification:
        details.append(f"verify step `{verification['step']}` {verification['result']} at "
                       f"{verification['at']}")
    elif resolution.get("verify_step"):
        details.append(f"verify with playbook step `{resolution['verify_step']}`")
    if details:
        lines += ["; ".join(details).capitalize() + ".", ""]
    return lines


def _markdown_timeline(timeline: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## Timeline (UTC)", "", "| time | actor | kind | what | evidence |",
             "| --- | --- | --- | --- | --- |"]
    for item in timeline:
        evidence = _location(item["evidence"]) if item.get("evidence") else ""
        lines.append(f"| {item['at'] or '—'} | {_cell(item['actor'])} | {item['kind']} | "
                     f"{_cell(item['text'])} | {_cell(evidence)} |")
    return lines + [""]


def _markdown_checks(data: Mapping[str, Any]) -> list[str]:
    lines = ["## Checks performed", ""]
    if data["checks_performed"]:
        lines += ["| check | cause | by | result |", "| --- | --- | --- | --- |"]
        for item in data["checks_performed"]:
            lines.append(f"| `{item['check_id']}` | {_cell(item.get('cause_id') or '')} | "
                         f"{_cell(item['by'])} | {item.get('result') or ''} |")
    else:
        lines.append("No check ran.")
    lines += ["", "## Checks not performed", ""]
    if data["checks_not_performed"]:
        for item in data["checks_not_performed"]:
            cause = f" for `{item['cause_id']}`" if item.get("cause_id") else ""
            lines.append(f"- `{item['check_id']}`{cause}: {item['reason']}")
    else:
        lines.append("Every check needed for the symptoms found could run.")
    return lines + [""]


def _markdown_action_items(items: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## Action items", ""]
    if not items:
        return lines + ["None.", ""]
    lines += ["| type | action | owner | done when |", "| --- | --- | --- | --- |"]
    for item in items:
        lines.append(f"| {item['type']} | {_cell(item['text'])} | {_cell(item['owner'])} | "
                     f"{_cell(item['success_criterion'])} |")
    return lines + [""]


def _markdown_footer(data: Mapping[str, Any]) -> list[str]:
    masked = data.get("redactions") or {}
    if not masked:
        return ["Redaction: nothing needed masking."]
    return ["Redaction: masked " + ", ".join(f"{count} line(s) with {kind}"
                                             for kind, count in masked.items()) + "."]


def _evidence_link(evidence: Mapping[str, Any]) -> str:
    text = ""
    if evidence.get("text"):
        shown = evidence["text"]
        if len(shown) > MARKDOWN_EVIDENCE_CHARACTERS:
            shown = shown[: MARKDOWN_EVIDENCE_CHARACTERS - 1] + "…"
        text = f": `{_code(shown)}`"
    return f"`{_location(evidence)}`{text}"


def _location(evidence: Mapping[str, Any]) -> str:
    return f"{evidence['source']}:{evidence['line']}" if evidence.get("line") else evidence["source"]


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return text.replace("`", "'")


# --- HTML ----------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1c2833;
       max-width: 960px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px;
     border-bottom: 1px solid #d5dbdb; padding-bottom: 4px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { border: 1px solid #d5dbdb; padding: 4px 8px; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
td code { overflow-wrap: anywhere; }
th { background: #f4f6f6; } code, pre { font: 13px ui-monospace, "DejaVu Sans Mono", monospace; }
pre { background: #f4f6f6; padding: 8px; white-space: pre-wrap; overflow-wrap: anywhere; }
.note { background: #fef5e7; border-left: 4px solid #f39c12; padding: 6px 10px; }
.status-confirmed { color: #b03a2e; font-weight: 600; } .status-likely { color: #ca6f1e; }
.status-ruled_out { color: #7f8c8d; } .evidence { font-size: 13px; }
"""


def render_html(data: Mapping[str, Any]) -> str:
    """Render the summary as one HTML file with inline CSS and SVG, and no script or link."""
    header = data["header"]
    body: list[str] = [f"<h1>Incident {_e(header['incident_id'])}: {_e(header['title'])}</h1>"]
    body.append(_html_table(["field", "value"], [
        ["Severity", header["severity"]], ["Status", header["status"]],
        ["Kube context", header.get("kube_context") or "not recorded"],
        ["Cluster", header.get("cluster") or "not recorded"],
        ["Namespaces", ", ".join(header["namespaces"]) or "none found"],
        ["Services", ", ".join(header["services"]) or "none found"],
        ["Mesh version", header.get("mesh_version") or "not found in the inputs"],
        ["Tool", header["tool_version"]], ["Built from", _source_text(data["source"])],
        ["Generated", data["generated_at"]],
    ]))
    for problem in data.get("problems") or []:
        body.append(f'<p class="note">{_e(problem)}</p>')
    body += ["<h2>Summary</h2>", f"<p>{_e(data['summary'])}</p>"]

    body.append("<h2>Impact</h2>")
    impact = data["impact"]
    if impact["measured"]:
        body.append(f"<p>{impact['failed_requests']} of {impact['requests']} requests failed "
                    f"({impact['error_rate'] * 100:.1f}%), counted from {_e(impact['basis'])}; "
                    f"one bar per {impact['bucket_seconds']} s.</p>")
        body.append(error_rate_svg(impact["series"], impact["bucket_seconds"]))
        body.append("<p>Affected workloads: " + _e(", ".join(
            f"{item['workload']} ({item['role']}, {item['failed']} failed)"
            for item in impact["affected_workloads"]) or "none") + ".</p>")
    else:
        body.append(f"<p>Not measured: {_e(impact['reason'])}.</p>")

    body.append("<h2>Milestones (UTC)</h2>")
    body.append(_html_table(["milestone", "time", "based on"],
                            [[item["name"], item["at"] or "—", item["basis"]]
                             for item in data["milestones"]]))
    if data["durations"]:
        body.append("<p>" + _e("; ".join(f"{item['name']} ({item['from']} → {item['to']}) "
                                          f"{item['text']}" for item in data["durations"])) + "</p>")

    anchors = evidence_anchors(data)
    body += _html_symptom(data["symptom"], anchors)
    body += _html_root_cause(data)
    body += _html_hypotheses(data["hypotheses"], anchors)
    body += _html_resolution(data["resolution"])

    body.append("<h2>Timeline (UTC)</h2>")
    body.append(_html_table(["time", "actor", "kind", "what", "evidence"], [
        [item["at"] or "—", item["actor"], item["kind"], item["text"],
         _Raw(_html_evidence_link(item["evidence"], anchors)) if item.get("evidence") else ""]
        for item in data["timeline"]]))

    body.append("<h2>Checks performed</h2>")
    body.append(_html_table(["check", "cause", "by", "result"], [
        [item["check_id"], item.get("cause_id") or "", item["by"], item.get("result") or ""]
        for item in data["checks_performed"]]) if data["checks_performed"] else "<p>No check ran.</p>")
    body.append("<h2>Checks not performed</h2>")
    body.append(_html_table(["check", "cause", "reason"], [
        [item["check_id"], item.get("cause_id") or "", item["reason"]]
        for item in data["checks_not_performed"]]) if data["checks_not_performed"] else
        "<p>Every check needed for the symptoms found could run.</p>")

    body.append("<h2>Action items</h2>")
    body.append(_html_table(["type", "action", "owner", "done when"], [
        [item["type"], item["text"], item["owner"], item["success_criterion"]]
        for item in data["action_items"]]))
    body += ["<h2>Handoff</h2>", f"<p>{_e(data['handoff'])}</p>"]
    body += _html_evidence_appendix(data, anchors)
    body.append(f"<p class=\"evidence\">{_e(_markdown_footer(data)[0])}</p>")

    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\">\n"
            f"<title>Incident {_e(header['incident_id'])}</title>\n<style>{_STYLE}</style>\n"
            "</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")
    return redact_text(page)


def _html_symptom(symptom: Mapping[str, Any], anchors: Mapping[tuple, str]) -> list[str]:
    parts = ["<h2>Symptom</h2>"]
    if not symptom["ids"]:
        return parts + ["<p>No known symptom was found in the inputs.</p>"]
    rows = [["What", f"{', '.join(symptom['titles'])} ({symptom['count']} occurrences, "
                     f"{symptom['first_seen'] or '?'} to {symptom['last_seen'] or '?'})"]]
    for label, key in (("Response codes", "response_codes"), ("Response flags", "response_flags"),
                       ("Response details", "response_code_details")):
        if symptom[key]:
            rows.append([label, ", ".join(_counted_text(item).replace("`", "")
                                          for item in symptom[key])])
    hop = symptom.get("hop")
    if hop:
        rows.append(["Hop", f"{hop['caller']} → {hop['callee']} (cluster "
                            f"{hop.get('upstream_cluster') or '-'})"])
    if symptom.get("first_failing_path"):
        rows.append(["First failing path", symptom["first_failing_path"]])
    if symptom.get("first_failure"):
        rows.append(["First failure", _Raw(_html_evidence(symptom["first_failure"], anchors))])
    return parts + [_html_table(["", ""], rows)]


def _html_root_cause(data: Mapping[str, Any]) -> list[str]:
    root = data["root_cause"]
    parts = ["<h2>Root cause</h2>"]
    if root is None:
        return parts + ["<p>No cause is supported by the evidence read.</p>"]
    parts.append(f"<p><strong>{_e(root['title'])}</strong> (<code>{_e(root['cause_id'])}</code>, "
                 f"<span class=\"status-{_e(root['status'])}\">{_e(root['status'])}</span>, "
                 f"score {root['score']:.2f})</p><p>{_e(root['summary'])}</p>")
    if data["causal_chain"]:
        parts.append(causal_chain_svg(data["causal_chain"]))
    factors = data["contributing_factors"]
    if factors:
        parts.append("<p>Contributing factors:</p><ul>" + "".join(
            f"<li>{_e(item['title'])} (<code>{_e(item['cause_id'])}</code>, {_e(item['status'])})</li>"
            for item in factors) + "</ul>")
    else:
        parts.append("<p>Contributing factors: none confirmed or likely outside the chain.</p>")
    return parts


def _html_hypotheses(hypotheses: Sequence[Mapping[str, Any]], anchors: Mapping[tuple, str]
                     ) -> list[str]:
    parts = ["<h2>Hypotheses</h2>"]
    if not hypotheses:
        return parts + ["<p>No hypothesis was ranked.</p>"]
    rows = []
    for item in hypotheses:
        evidence = "".join(f"<div>for: {_html_evidence(ref, anchors)}</div>"
                           for ref in item["evidence_for"])
        evidence += "".join(f"<div>against: {_html_evidence(ref, anchors)}</div>"
                            for ref in item["evidence_against"])
        rows.append([str(item["rank"]), _Raw(f"{_e(item['title'])}<br><code>"
                                              f"{_e(item['cause_id'])}</code>"),
                     _Raw(f"<span class=\"status-{_e(item['status'])}\">{_e(item['status'])}</span>"),
                     f"{item['score']:.2f}", _Raw(f"<div class=\"evidence\">{evidence}</div>")])
    return parts + [_html_table(["rank", "cause", "status", "score", "evidence"], rows)]


def _html_resolution(resolution: Mapping[str, Any]) -> list[str]:
    parts = ["<h2>Resolution</h2>", f"<p>State: <strong>{_e(resolution['state'])}</strong>.</p>"]
    if resolution.get("remediation"):
        parts.append(f"<p>{_e(resolution['remediation'])}</p>")
    for label, key in (("Change", "change"), ("Dry run", "dry_run"), ("Rollback", "rollback")):
        if resolution.get(key):
            parts.append(f"<p>{label}:</p><pre>{_e(argv_text(resolution[key]))}</pre>")
    verification = resolution.get("verification")
    if resolution.get("confirmed_by"):
        parts.append(f"<p>Confirmed by {_e(resolution['confirmed_by'])} at "
                     f"{_e(resolution['confirmed_at'])}.</p>")
    if verification:
        parts.append(f"<p>Verify step <code>{_e(verification['step'])}</code>: "
                     f"{_e(verification['result'])} at {_e(verification['at'])}.</p>")
    return parts


def evidence_anchors(data: Mapping[str, Any]) -> dict[tuple, str]:
    """Give every cited (source, line) an anchor id, in order of first citation."""
    cited = []
    if data["symptom"].get("first_failure"):
        cited.append(data["symptom"]["first_failure"])
    for item in data["hypotheses"]:
        cited += item["evidence_for"] + item["evidence_against"]
    cited += [item["evidence"] for item in data["timeline"] if item.get("evidence")]

    anchors: dict[tuple, str] = {}
    for evidence in cited:
        key = (evidence["source"], evidence.get("line"))
        if key not in anchors:
            anchors[key] = f"evidence-{len(anchors) + 1}"
    return anchors


def _html_evidence(evidence: Mapping[str, Any], anchors: Mapping[tuple, str]) -> str:
    text = f" <code>{_e(evidence['text'])}</code>" if evidence.get("text") else ""
    return _html_evidence_link(evidence, anchors) + text


def _html_evidence_link(evidence: Mapping[str, Any], anchors: Mapping[tuple, str]) -> str:
    anchor = anchors.get((evidence["source"], evidence.get("line")))
    location = f"<code>{_e(_location(evidence))}</code>"
    return f'<a href="#{anchor}">{location}</a>' if anchor else location


def _html_evidence_appendix(data: Mapping[str, Any], anchors: Mapping[tuple, str]) -> list[str]:
    """List every cited line once, with its text where a citation carried it."""
    texts: dict[tuple, str] = {}
    for item in data["hypotheses"]:
        for evidence in item["evidence_for"] + item["evidence_against"]:
            texts.setdefault((evidence["source"], evidence.get("line")), evidence.get("text") or "")
    first = data["symptom"].get("first_failure")
    if first:
        texts.setdefault((first["source"], first.get("line")), first.get("text") or "")

    rows = []
    for key, anchor in anchors.items():
        location = f"{key[0]}:{key[1]}" if key[1] else key[0]
        rows.append(f'<tr id="{anchor}"><td><code>{_e(location)}</code></td>'
                    f'<td><code>{_e(texts.get(key, ""))}</code></td></tr>')
    return ["<h2>Evidence cited</h2>",
            "<table><thead><tr><th>source</th><th>text</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>"]


class _Raw(str):
    """Markup that `_html_table` inserts without escaping."""


def _html_table(headings: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(heading)}</th>" for heading in headings)
    thead = f"<thead><tr>{head}</tr></thead>" if any(headings) else ""
    body = "".join("<tr>" + "".join(
        f"<td>{cell if isinstance(cell, _Raw) else _e(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows)
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


# --- SVG -----------------------------------------------------------------------


def error_rate_svg(series: Sequence[Mapping[str, Any]], bucket_seconds: int | None) -> str:
    """Draw requests and failures per bucket as bars and the error rate as a line."""
    width, height = CHART_WIDTH, CHART_HEIGHT
    plot_width = width - _PLOT_LEFT - _PLOT_RIGHT
    plot_height = height - _PLOT_TOP - _PLOT_BOTTOM
    base = _PLOT_TOP + plot_height
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="error-rate-chart" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="Requests, failed requests and error rate over time">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    if not series:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">'
                     "No timed access-log entry</text></svg>")
        return "".join(parts)

    peak = max(point["requests"] for point in series) or 1
    slot = plot_width / len(series)
    bar = max(1.0, slot * 0.8)
    for fraction in (0, 0.5, 1):
        y = base - fraction * plot_height
        parts.append(f'<line x1="{_PLOT_LEFT}" y1="{y:.1f}" x2="{_PLOT_LEFT + plot_width}" '
                     f'y2="{y:.1f}" stroke="#e5e8e8"/>')
        parts.append(f'<text x="{_PLOT_LEFT - 6}" y="{y + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{_axis_number(peak * fraction)}</text>')
        parts.append(f'<text x="{_PLOT_LEFT + plot_width + 6}" y="{y + 4:.1f}" font-size="11" '
                     f'fill="{RATE_COLOUR}">{int(fraction * 100)}%</text>')

    points = []
    for index, point in enumerate(series):
        x = _PLOT_LEFT + index * slot + (slot - bar) / 2
        total_height = point["requests"] / peak * plot_height
        failed_height = point["failed"] / peak * plot_height
        label = (f"{point['start']}: {point['failed']} of {point['requests']} failed "
                 f"({point['error_rate'] * 100:.0f}%)")
        parts.append(f'<g><title>{_e(label)}</title>'
                     f'<rect x="{x:.1f}" y="{base - total_height:.1f}" width="{bar:.1f}" '
                     f'height="{total_height:.1f}" fill="{REQUESTS_COLOUR}"/>'
                     f'<rect x="{x:.1f}" y="{base - failed_height:.1f}" width="{bar:.1f}" '
                     f'height="{failed_height:.1f}" fill="{FAILED_COLOUR}"/></g>')
        # A bucket without requests has no error rate, so the line skips it.
        if point["requests"]:
            points.append(f"{x + bar / 2:.1f},{base - point['error_rate'] * plot_height:.1f}")
    if len(points) > 1:
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{RATE_COLOUR}" '
                     'stroke-width="2"/>')
    for spot in points:
        x, y = spot.split(",")
        parts.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{RATE_COLOUR}"/>')

    for index in sorted({0, len(series) // 2, len(series) - 1}):
        x = _PLOT_LEFT + index * slot + slot / 2
        parts.append(f'<text x="{x:.1f}" y="{base + 16}" font-size="11" text-anchor="middle">'
                     f'{_e(_clock_label(series[index]["start"], bucket_seconds))}</text>')
    legend_y = height - 6
    parts.append(
        f'<rect x="{_PLOT_LEFT}" y="{legend_y - 9}" width="10" height="10" fill="{REQUESTS_COLOUR}"/>'
        f'<text x="{_PLOT_LEFT + 14}" y="{legend_y}" font-size="11">requests</text>'
        f'<rect x="{_PLOT_LEFT + 90}" y="{legend_y - 9}" width="10" height="10" fill="{FAILED_COLOUR}"/>'
        f'<text x="{_PLOT_LEFT + 104}" y="{legend_y}" font-size="11">failed</text>'
        f'<line x1="{_PLOT_LEFT + 160}" y1="{legend_y - 4}" x2="{_PLOT_LEFT + 178}" '
        f'y2="{legend_y - 4}" stroke="{RATE_COLOUR}" stroke-width="2"/>'
        f'<text x="{_PLOT_LEFT + 184}" y="{legend_y}" font-size="11">error rate (UTC)</text>')
    parts.append("</svg>")
    return "".join(parts)


def _axis_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _clock_label(start: str, bucket_seconds: int | None) -> str:
    clock = start[11:19] if bucket_seconds and bucket_seconds < 60 else start[11:16]
    return clock if bucket_seconds and bucket_seconds < 86400 else start[:10]


_NODE_COLOURS = {"symptom": "#fdebd0", "confirmed": "#f5b7b1", "likely": "#fad7a0",
                 "possible": "#fcf3cf"}


def causal_chain_svg(chain: Sequence[Mapping[str, Any]]) -> str:
    """Draw the chain from the symptom down to the root cause as boxes joined by arrows."""
    width = CHART_WIDTH
    box_width = width - 40
    gap = 34
    boxes = []
    y = 10
    for node in chain:
        lines = textwrap.wrap(node["title"], 90)[:3] or [node["id"]]
        box_height = 26 + 16 * len(lines)
        boxes.append((node, lines, y, box_height))
        y += box_height + gap
    height = y - gap + 10

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="causal-chain" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             'aria-label="Causal chain from the symptom to the root cause">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
             'markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#566573"/>'
             '</marker></defs>']
    for index, (node, lines, top, box_height) in enumerate(boxes):
        colour = _NODE_COLOURS.get(node["kind"] if node["kind"] == "symptom" else
                                   node.get("status") or "", "#eaeded")
        last = index == len(boxes) - 1
        stroke = "#922b21" if last else "#566573"
        parts.append(f'<rect x="20" y="{top}" width="{box_width}" height="{box_height}" rx="6" '
                     f'fill="{colour}" stroke="{stroke}" stroke-width="{2 if last else 1}"/>')
        label = f"{node['kind']}: {node['id']}" + (f" ({node['status']})" if node.get("status") else "")
        if last:
            label += " (root cause)"
        parts.append(f'<text x="32" y="{top + 18}" font-size="12" font-weight="600">{_e(label)}</text>')
        for number, line in enumerate(lines):
            parts.append(f'<text x="32" y="{top + 36 + 16 * number}" font-size="13">{_e(line)}</text>')
        if not last:
            bottom = top + box_height
            parts.append(f'<line x1="{width / 2}" y1="{bottom}" x2="{width / 2}" '
                         f'y2="{bottom + gap - 2}" stroke="#566573" stroke-width="1.5" '
                         'marker-end="url(#arrow)"/>')
            parts.append(f'<text x="{width / 2 + 8}" y="{bottom + gap / 2 + 4}" font-size="11" '
                         'fill="#566573">explained by</text>')
    parts.append("</svg>")
    return "".join(parts)
