"""The incident summary: the postmortem model built from a session journal or a scan.

Owns what the summary contains and how each part is derived. The parts are
the header, the UTC milestones and the times between them, the symptom, the
impact measured from the access logs, and the timeline. Then come the
ranked hypotheses with evidence for and against, the root cause and
contributing factors, the resolution, the checks performed and not
performed, action items and the shift-handoff note. The symptom and impact
come from doctor/summary_impact.py, the timeline, milestones and resolution
from doctor/summary_timeline.py, and rendering lives in
doctor/summary_render.py.

A one-shot scan gives everything but what only a session records (who
decided what, the commands run, the confirmed change and its verification).
From a journal, the entries read are the ones doctor/session.py writes:

- `session_started`: `paths`, `playbook`, `context`, `cluster`, `namespace`,
  and when given `incident_id`, `title`, `severity`, `mesh_version`, `owner`;
- `scan`: `paths`, and `diagnosis` (the `Diagnosis.to_dict()` form) when
  stored; otherwise the paths are scanned again;
- `finding`: `cause_id`, `status`;
- `step_result`: `step`, `kind` (check, ask, remediate, note), `result`,
  `reason`, `answer`;
- `answer`: `step` with `answer`, or `placeholder` with `value`;
- `command`: `step`, `role` (check, dry_run, current_state, apply,
  rollback), `argv`, `status`, `exit_status`;
- `confirmation`: `action` (apply, rollback, context), `step`, `argv`,
  `dry_run`, `rollback`, `context`;
- `milestone`: `verified` (the remediation step) and `by` (its verify step),
  or `name` (started, detected, identified, mitigated or resolved) with an
  optional `at`;
- `note`: `text`, `resumed`, `context_changed`, or `action_item`
  ({type, text, owner, success_criterion});
- `session_ended`: `verified`, `reason`.

Unknown keys are ignored, so an older or newer journal still summarises.
Every string leaves `to_dict` redacted.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from doctor import __version__
from doctor.journal import (
    FINDING,
    NOTE,
    SCAN,
    SESSION_STARTED,
    STEP_RESULT,
    JournalEntry,
    read_journal,
)
from doctor.parsers.accesslog import AccessLogEntry
from doctor.parsers.kube import KubeEvent, PodInfo
from doctor.redact import count_redactions, redact_values
from doctor.summary_impact import build_impact, build_symptom, entry_order
from doctor.summary_timeline import (
    build_durations,
    build_milestones,
    build_resolution,
    build_timeline,
)
from doctor.summary_values import (
    argv_text,
    clock_text,
    evidence_ref,
    iso,
    last_line,
    root_finding,
    utc,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "1.0"
EVIDENCE_KEPT = 12


class SummaryInputError(ValueError):
    """The journal or the paths cannot be summarised; the message names them and the fix."""


@dataclass
class SummarySource:
    """The origin of a summary: a session journal or a scan, and the paths read."""

    kind: str  # "session" or "scan"
    session_id: str | None = None
    journal: str | None = None
    paths: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class IncidentSummary:
    """The postmortem of one incident, ready for `to_dict` and the renderers."""

    source: SummarySource
    generated_at: datetime
    header: dict[str, Any]
    milestones: list[dict[str, Any]]
    durations: list[dict[str, Any]]
    summary: str
    symptom: dict[str, Any]
    impact: dict[str, Any]
    timeline: list[dict[str, Any]]
    hypotheses: list[dict[str, Any]]
    root_cause: dict[str, Any] | None
    contributing_factors: list[dict[str, Any]]
    causal_chain: list[dict[str, Any]]
    resolution: dict[str, Any]
    checks_performed: list[dict[str, Any]]
    checks_not_performed: list[dict[str, Any]]
    action_items: list[dict[str, Any]]
    handoff: str
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data with every string redacted."""
        raw = {
            "schema_version": SCHEMA_VERSION,
            "generated_at": iso(self.generated_at),
            "source": {"kind": self.source.kind, "session_id": self.source.session_id,
                       "journal": self.source.journal, "paths": list(self.source.paths)},
            "header": self.header,
            "milestones": self.milestones,
            "durations": self.durations,
            "summary": self.summary,
            "symptom": self.symptom,
            "impact": self.impact,
            "timeline": self.timeline,
            "hypotheses": self.hypotheses,
            "root_cause": self.root_cause,
            "contributing_factors": self.contributing_factors,
            "causal_chain": self.causal_chain,
            "resolution": self.resolution,
            "checks_performed": self.checks_performed,
            "checks_not_performed": self.checks_not_performed,
            "action_items": self.action_items,
            "handoff": self.handoff,
            "problems": list(self.source.problems) + list(self.problems),
        }
        raw = _jsonable(raw)
        raw["redactions"] = redactions_of(raw)
        return redact_values(raw)


def apply_overrides(summary: IncidentSummary, *, incident_id: str | None = None,
                    title: str | None = None, severity: str | None = None,
                    owner: str | None = None) -> IncidentSummary:
    """Apply the fields the engineer sets over the derived ones: id, title, severity, owner.

    The owner replaces "unassigned" on the action items; owners already named
    in the journal stay.
    """
    for key, value in (("incident_id", incident_id), ("title", title), ("severity", severity)):
        if value:
            summary.header[key] = value
    if owner:
        for item in summary.action_items:
            if item["owner"] == "unassigned":
                item["owner"] = owner
    if severity or owner:
        summary.handoff = build_handoff(summary.header, summary.root_cause, summary.resolution,
                                        summary.checks_not_performed, summary.action_items,
                                        summary.impact)
    return summary


def redactions_of(data: Any) -> dict[str, int]:
    """Count what redaction masks in the strings of `data`, by kind of secret."""
    totals: Counter = Counter()
    for text in _strings(data):
        totals.update(count_redactions(text))
    return dict(sorted(totals.items()))


# --- Entry points --------------------------------------------------------------


def summary_from_scan(paths: Sequence[Path], *, engine=None, now: datetime | None = None
                      ) -> IncidentSummary:
    """Build the summary of a one-shot scan of `paths`."""
    from doctor.scan import load_engine

    engine = engine or load_engine()
    moment = utc(now or datetime.now(timezone.utc))
    diagnosis, facts = _scan(paths, engine, moment)
    source = SummarySource("scan", paths=[str(path) for path in paths])
    return build_summary(diagnosis.to_dict(), facts, [], source=source, now=moment)


def summary_from_journal(journal_path: Path, *, engine=None, now: datetime | None = None
                         ) -> IncidentSummary:
    """Build the summary of the session whose journal is at `journal_path`.

    Raises SummaryInputError when the journal is missing or has no entry.
    """
    if not journal_path.is_file():
        raise SummaryInputError(f"no session journal at {journal_path}; list the sessions "
                                "with `mesh-doctor sessions`")
    read = read_journal(journal_path)
    if not read.entries:
        detail = "; ".join(problem.message for problem in read.problems) or "the file is empty"
        raise SummaryInputError(f"the journal {journal_path} has no readable entry ({detail})")

    moment = utc(now or datetime.now(timezone.utc))
    source = SummarySource("session", session_id=journal_path.parent.name,
                           journal=str(journal_path))
    source.problems += [f"{journal_path}:{problem.line}: {problem.message}"
                        for problem in read.problems]
    paths = _session_paths(read.entries)
    source.paths = [str(path) for path in paths]

    diagnosis_dict = _stored_diagnosis(read.entries)
    facts = None
    readable = [path for path in paths if path.exists()]
    if readable:
        from doctor.scan import load_engine

        engine = engine or load_engine()
        diagnosis, facts = _scan(readable, engine, _scan_time(read.entries, moment))
        if diagnosis_dict is None:
            diagnosis_dict = diagnosis.to_dict()
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        source.problems.append("the session's inputs are no longer readable, so the impact "
                               "is not measured: " + ", ".join(missing))
    if diagnosis_dict is None:
        source.problems.append("the journal contains no scan result and no readable input, so "
                               "no hypothesis is listed")
        diagnosis_dict = {"symptoms": [], "findings": [], "coverage": {}, "inputs": []}
    return build_summary(diagnosis_dict, facts, read.entries, source=source, now=moment)


def _scan(paths: Sequence[Path], engine, now: datetime):
    from doctor.engine import diagnose
    from doctor.readers import read_paths

    read = read_paths([Path(path) for path in paths], engine.rulebook.signatures)
    diagnosis = diagnose(read.facts, engine.rulebook, engine.registry, read.observations, now=now)
    diagnosis.inputs = list(read.inputs)
    return diagnosis, read.facts


def _session_paths(entries: Sequence[JournalEntry]) -> list[Path]:
    paths: list[str] = []
    for entry in entries:
        if entry.kind in (SESSION_STARTED, SCAN):
            for path in entry.data.get("paths") or []:
                if str(path) not in paths:
                    paths.append(str(path))
    return [Path(path) for path in paths]


def _stored_diagnosis(entries: Sequence[JournalEntry]) -> dict[str, Any] | None:
    for entry in reversed(entries):
        stored = entry.data.get("diagnosis") if entry.kind == SCAN else None
        if isinstance(stored, dict) and "findings" in stored:
            return stored
    return None


def _scan_time(entries: Sequence[JournalEntry], default: datetime) -> datetime:
    for entry in entries:
        if entry.kind == SCAN:
            return utc(entry.at)
    return default


# --- The builder ---------------------------------------------------------------


def build_summary(diagnosis: Mapping[str, Any], facts, entries: Sequence[JournalEntry], *,
                  source: SummarySource, now: datetime) -> IncidentSummary:
    """Build the summary from a diagnosis in its `to_dict` form, facts and journal entries.

    `facts` is the FactSet of the inputs, or None when they are not readable.
    """
    started = _started_data(entries)
    findings = list(diagnosis.get("findings") or [])
    root = root_finding(findings)
    access = sorted(facts.of(AccessLogEntry), key=entry_order) if facts is not None else []
    pods = list(facts.of(PodInfo)) if facts is not None else []
    events = list(facts.of(KubeEvent)) if facts is not None else []

    symptom = build_symptom(diagnosis, access, pods)
    impact = build_impact(access, pods, readable=facts is not None)
    chain = build_causal_chain(diagnosis, root)
    resolution = build_resolution(root, entries, symptom)
    timeline = build_timeline(entries, diagnosis, access, pods, events, now, source.journal)
    milestones, problems = build_milestones(entries, impact, symptom, root, resolution, now)
    durations = build_durations(milestones)
    performed, not_performed = build_checks(diagnosis, entries)
    header = build_header(started, source, diagnosis, symptom, impact, root, milestones, pods, now)
    contributing = build_contributing(findings, root)
    hypotheses = [_hypothesis(finding) for finding in findings]
    action_items = build_action_items(root, symptom, not_performed, resolution, entries, started)
    summary_text = build_summary_text(symptom, impact, root, resolution)
    handoff = build_handoff(header, root, resolution, not_performed, action_items, impact)

    return IncidentSummary(
        source=source, generated_at=now, header=header, milestones=milestones,
        durations=durations, summary=summary_text, symptom=symptom, impact=impact,
        timeline=timeline, hypotheses=hypotheses, root_cause=_root_dict(root),
        contributing_factors=contributing, causal_chain=chain, resolution=resolution,
        checks_performed=performed, checks_not_performed=not_performed,
        action_items=action_items, handoff=handoff, problems=problems,
    )


def _started_data(entries: Sequence[JournalEntry]) -> dict[str, Any]:
    for entry in entries:
        if entry.kind == SESSION_STARTED:
            return dict(entry.data)
    return {}


def _root_dict(root: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if root is None:
        return None
    return {"cause_id": root["cause_id"], "title": root.get("title", root["cause_id"]),
            "status": root.get("status"), "score": root.get("score"),
            "summary": root.get("summary", ""), "chain": list(root.get("chain") or []),
            "remediation": root.get("remediation", ""), "playbook": root.get("playbook")}


# --- Hypotheses, chain, contributing factors -----------------------------------


def _hypothesis(finding: Mapping[str, Any]) -> dict[str, Any]:
    evidence = list(finding.get("evidence") or [])
    supporting = [item for item in evidence if item.get("supports", True)]
    against = [item for item in evidence if not item.get("supports", True)]
    return {
        "rank": finding.get("rank"),
        "cause_id": finding["cause_id"],
        "title": finding.get("title", finding["cause_id"]),
        "status": finding.get("status"),
        "score": finding.get("score"),
        "chain": list(finding.get("chain") or []),
        "evidence_for": [evidence_ref(item) for item in supporting[:EVIDENCE_KEPT]],
        "evidence_against": [evidence_ref(item) for item in against[:EVIDENCE_KEPT]],
        "evidence_omitted": max(0, len(supporting) - EVIDENCE_KEPT)
        + max(0, len(against) - EVIDENCE_KEPT),
        "checks": [{"check_id": check["check_id"], "role": check.get("role"),
                    "result": check.get("result"), "reason": check.get("reason", "")}
                   for check in finding.get("checks") or []],
    }


def build_causal_chain(diagnosis: Mapping[str, Any], root: Mapping[str, Any] | None
                       ) -> list[dict[str, Any]]:
    """List the nodes from the symptom to the root cause, each with its title and status."""
    if root is None:
        return []
    titles = {item["id"]: item.get("title", item["id"]) for item in diagnosis.get("symptoms") or []}
    statuses = {}
    for finding in diagnosis.get("findings") or []:
        titles[finding["cause_id"]] = finding.get("title", finding["cause_id"])
        statuses[finding["cause_id"]] = finding.get("status")
    symptom_ids = {item["id"] for item in diagnosis.get("symptoms") or []}
    return [{"id": node, "title": titles.get(node, node),
             "kind": "symptom" if node in symptom_ids else "cause",
             "status": statuses.get(node)}
            for node in root.get("chain") or [root["cause_id"]]]


def build_contributing(findings: Sequence[Mapping[str, Any]], root: Mapping[str, Any] | None
                       ) -> list[dict[str, Any]]:
    """List confirmed or likely causes outside the root cause's chain."""
    if root is None:
        return []
    in_chain = set(root.get("chain") or [])
    factors = []
    for finding in findings:
        if finding is root or finding["cause_id"] in in_chain:
            continue
        if finding.get("status") not in ("confirmed", "likely"):
            continue
        factors.append({"cause_id": finding["cause_id"],
                        "title": finding.get("title", finding["cause_id"]),
                        "status": finding.get("status"), "summary": finding.get("summary", "")})
    return factors


# --- Checks, action items, header, summary, handoff ----------------------------


def build_checks(diagnosis: Mapping[str, Any], entries: Sequence[JournalEntry]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """List the checks that ran with their result, and those that could not with the reason."""
    performed: list[dict[str, Any]] = []
    not_performed: list[dict[str, Any]] = []
    for finding in diagnosis.get("findings") or []:
        for check in finding.get("checks") or []:
            if check.get("result") == "unknown":
                continue
            performed.append({"check_id": check["check_id"], "cause_id": finding["cause_id"],
                              "by": "engine", "result": check.get("result"),
                              "role": check.get("role")})
    for item in (diagnosis.get("coverage") or {}).get("not_checked") or []:
        not_performed.append({"check_id": item["check_id"], "cause_id": item.get("cause_id"),
                              "by": "engine", "reason": item.get("reason", "")})

    playbook = _started_data(entries).get("playbook") or "playbook"
    session_cause = next((entry.data.get("cause_id") for entry in entries
                          if entry.kind == FINDING), None)
    for entry in entries:
        if entry.kind != STEP_RESULT or entry.data.get("kind", "check") != "check":
            continue
        data = entry.data
        check_id = f"{playbook}.{data.get('step')}"
        result = data.get("result")
        if result in ("could_not_run", "skipped", "shown"):
            not_performed.append({"check_id": check_id, "cause_id": session_cause,
                                  "by": entry.actor,
                                  "reason": last_line(data.get("reason") or "") or result})
        else:
            detail = last_line(data.get("reason") or "")
            performed.append({"check_id": check_id, "cause_id": session_cause,
                              "by": entry.actor, "role": "playbook",
                              "result": f"{result}: {detail}" if detail else result})
    return performed, not_performed


def build_action_items(root: Mapping[str, Any] | None, symptom: Mapping[str, Any],
                       not_performed: Sequence[Mapping[str, Any]], resolution: Mapping[str, Any],
                       entries: Sequence[JournalEntry], started: Mapping[str, Any]
                       ) -> list[dict[str, Any]]:
    """Derive follow-ups: finish the fix, close the evidence gaps, alert on the symptom."""
    owner = str(started.get("owner") or "unassigned")
    hop = symptom.get("hop") or {}
    callee = hop.get("callee") or "the upstream"
    caller = hop.get("caller") or "the callers"
    codes = _code_list(symptom) or ", ".join(symptom.get("ids") or []) or "the failing"
    items: list[dict[str, Any]] = []

    if root is not None and resolution.get("state") not in ("verified",):
        verify = resolution.get("verify_step")
        criterion = (f"playbook step `{verify}` passes and no {codes} response from {caller} "
                     f"to {callee} for 30 minutes") if verify else \
            f"no {codes} response from {caller} to {callee} for 30 minutes"
        items.append({"type": "mitigate", "text": f"Apply and verify the fix for "
                      f"`{root['cause_id']}`: {root.get('remediation', '')}".strip(),
                      "owner": owner, "success_criterion": criterion})
    if root is not None:
        items.append({"type": "prevent", "text": f"Find how `{root['cause_id']}` reached the "
                      "cluster and add a guard (admission policy, CI check or runbook)",
                      "owner": owner, "success_criterion": "the guard rejects a change that "
                      "reproduces this cause in a test or staging cluster"})
    if symptom.get("ids"):
        items.append({"type": "detect", "text": f"Alert on the {codes} rate from {caller} to "
                      f"{callee} (Envoy's istio_requests_total by response_code)",
                      "owner": owner, "success_criterion": "the alert fires within 5 minutes "
                      "when the lab or a canary reproduces the failure"})
    for item in not_performed:
        items.append({"type": "investigate",
                      "text": f"Collect what `{item['check_id']}` needs"
                              + (f" to judge `{item['cause_id']}`" if item.get("cause_id") else "")
                              + f": {item['reason']}",
                      "owner": owner, "success_criterion": "a new scan with that input judges "
                      "the cause instead of marking it unknown"})
    for entry in entries:
        proposed = entry.data.get("action_item") if entry.kind == NOTE else None
        if isinstance(proposed, dict) and proposed.get("text"):
            items.append({"type": str(proposed.get("type") or "follow-up"),
                          "text": str(proposed["text"]),
                          "owner": str(proposed.get("owner") or entry.actor or owner),
                          "success_criterion": str(proposed.get("success_criterion") or "")})
    return items


def build_header(started: Mapping[str, Any], source: SummarySource, diagnosis: Mapping[str, Any],
                 symptom: Mapping[str, Any], impact: Mapping[str, Any],
                 root: Mapping[str, Any] | None, milestones: Sequence[Mapping[str, Any]],
                 pods: Sequence[PodInfo], now: datetime) -> dict[str, Any]:
    """Collect the incident's identity: id, title, severity, status, where and with what."""
    reached = {item["name"] for item in milestones if item["at"]}
    status = next((name for name in ("resolved", "mitigated", "identified") if name in reached),
                  "investigating")
    hop = symptom.get("hop") or {}

    namespaces = set()
    services = set()
    for item in impact.get("affected_workloads") or []:
        services.add(item["workload"])
    if hop.get("callee"):
        services.add(hop["callee"])
        if "." in hop["callee"]:
            namespaces.add(hop["callee"].split(".")[1])
    for pod in pods:
        if pod.namespace:
            namespaces.add(pod.namespace)
    if started.get("namespace"):
        namespaces.add(str(started["namespace"]))

    title = started.get("title")
    if not title:
        symptom_titles = ", ".join(symptom.get("titles") or []) or "No symptom found"
        hop_text = f" from {hop['caller']} to {hop['callee']}" if hop.get("caller") else ""
        cause_text = f": {root.get('title', root['cause_id'])}" if root is not None else ""
        title = f"{symptom_titles}{hop_text}{cause_text}"

    incident_id = started.get("incident_id") or source.session_id or \
        "scan-" + now.strftime("%Y%m%dT%H%M%SZ")
    return {
        "incident_id": str(incident_id),
        "title": str(title),
        "severity": str(started.get("severity") or "unset"),
        "status": status,
        "kube_context": started.get("context"),
        "cluster": started.get("cluster"),
        "namespaces": sorted(namespaces),
        "services": sorted(services),
        "mesh_version": started.get("mesh_version") or _proxy_version(pods),
        "tool_version": f"mesh-doctor {__version__}",
        "inputs": len(diagnosis.get("inputs") or []),
    }


def _proxy_version(pods: Sequence[PodInfo]) -> str | None:
    for pod in pods:
        for container in pod.containers:
            if container.name == "istio-proxy" and container.image and ":" in container.image:
                return "istio-proxy " + container.image.rsplit(":", 1)[1]
    return None


def build_summary_text(symptom: Mapping[str, Any], impact: Mapping[str, Any],
                       root: Mapping[str, Any] | None, resolution: Mapping[str, Any]) -> str:
    """Write one to three sentences: what failed, why, and the state of the fix."""
    hop = symptom.get("hop") or {}
    codes = _code_list(symptom)
    sentences = []
    if impact.get("measured") and impact.get("failed_requests"):
        between = f" from {hop['caller']} to {hop['callee']}" if hop.get("caller") else ""
        sentences.append(
            f"{impact['failed_requests']} of {impact['requests']} requests{between} failed "
            f"({impact['error_rate'] * 100:.1f}%) with {codes or 'no response'} between "
            f"{clock_text(impact['first_failure'])} and {clock_text(impact['last_failure'])} UTC.")
    elif symptom.get("titles"):
        sentences.append(f"The evidence shows {', '.join(symptom['titles'])} "
                         f"({symptom.get('count', 0)} occurrences).")
    else:
        sentences.append("The evidence read shows no known symptom.")

    if root is not None:
        sentences.append(f"Root cause ({root.get('status')}): "
                         f"{root.get('title', root['cause_id'])}. {root.get('summary', '')}".strip())
    else:
        sentences.append("No cause is supported by the evidence read.")

    state = resolution.get("state")
    if state == "verified":
        sentences.append("The change was applied and its verification passed.")
    elif state == "applied":
        sentences.append("The change was applied; its verification has not passed yet.")
    elif state == "rolled_back":
        sentences.append("The change was rolled back.")
    elif state == "proposed":
        sentences.append("A change is proposed but not applied.")
    elif state == "refused":
        sentences.append("A change is proposed; the read-only session did not apply it.")
    elif state == "skipped":
        sentences.append("A change is proposed; the engineer chose not to apply it.")
    elif state == "failed":
        sentences.append("The change was attempted and failed.")
    return " ".join(sentences)


def build_handoff(header: Mapping[str, Any], root: Mapping[str, Any] | None,
                  resolution: Mapping[str, Any], not_performed: Sequence[Mapping[str, Any]],
                  action_items: Sequence[Mapping[str, Any]], impact: Mapping[str, Any]) -> str:
    """Write the short note for the next on-call engineer."""
    lines = [f"Status: {header['status']}; severity {header['severity']}."]
    if root is not None:
        lines.append(f"Root cause ({root.get('status')}): {root.get('title', root['cause_id'])}.")
    else:
        lines.append("Root cause: not found yet.")
    state = resolution.get("state")
    if resolution.get("change"):
        lines.append(f"Change ({state}): `{argv_text(resolution['change'])}`"
                     + (f"; rollback: `{argv_text(resolution['rollback'])}`"
                        if resolution.get("rollback") else "") + ".")
    if impact.get("measured") and impact.get("last_failure"):
        lines.append(f"Last failing request seen at {impact['last_failure']}.")
    if not_performed:
        lines.append(f"{len(not_performed)} check(s) could not run; see the list before "
                     "trusting the ranking.")
    if action_items:
        lines.append(f"Next: {action_items[0]['text']}")
    return " ".join(lines)


# --- Helpers -------------------------------------------------------------------


def _code_list(symptom: Mapping[str, Any]) -> str:
    codes = []
    for item in symptom.get("response_codes") or []:
        if item["value"] not in codes:
            codes.append(item["value"])
    return ", ".join(str(code) for code in codes)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)

