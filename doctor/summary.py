"""The incident summary: the postmortem model built from a session journal or a scan.

Owns what the summary contains and how each part is derived: the header,
the UTC milestones and the times between them, the symptom, the impact
measured from the access logs, the timeline, the ranked hypotheses with
evidence for and against, the root cause and contributing factors, the
resolution, the checks performed and not performed, action items and the
shift-handoff note. Rendering lives in doctor/summary_render.py.

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
  or `name` (one of MILESTONES) with an optional `at`;
- `note`: `text`, `resumed`, `context_changed`, or `action_item`
  ({type, text, owner, success_criterion});
- `session_ended`: `verified`, `reason`.

Unknown keys are ignored, so an older or newer journal still summarises.
Every string leaves `to_dict` redacted.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from doctor import __version__
from doctor.journal import (
    ANSWER,
    COMMAND,
    CONFIRMATION,
    FINDING,
    MILESTONE,
    NOTE,
    SCAN,
    SESSION_ENDED,
    SESSION_STARTED,
    STEP_RESULT,
    STEP_STARTED,
    JournalEntry,
    read_journal,
)
from doctor.logscan import is_failure
from doctor.parsers.accesslog import AccessLogEntry
from doctor.parsers.kube import KubeEvent, PodInfo
from doctor.redact import count_redactions, redact_values

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "1.0"
MILESTONES = ("started", "detected", "identified", "mitigated", "resolved")
DURATION_NAMES = {
    "detected": "time to detect",
    "identified": "time to identify",
    "mitigated": "time to mitigate",
    "resolved": "time to resolve",
}
TIMELINE_KINDS = ("symptom", "check", "finding", "decision", "action", "rollback", "milestone",
                  "note")
ACTIVE_STATUSES = ("confirmed", "likely", "possible")
EVIDENCE_KEPT = 12
# Bucket widths tried for the error-rate series, narrowest first; the first
# that keeps the series at or under SERIES_POINTS buckets is used.
BUCKET_SECONDS = (1, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
SERIES_POINTS = 120

_UPSTREAM_CLUSTER = re.compile(
    r"^(?P<direction>inbound|outbound)\|(?P<port>\d*)\|(?P<subset>[^|]*)\|(?P<host>.*)$")


class SummaryInputError(ValueError):
    """The journal or the paths cannot be summarised; the message names them and the fix."""


@dataclass
class SummarySource:
    """What the summary was built from."""

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
            "generated_at": _iso(self.generated_at),
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
    moment = _utc(now or datetime.now(timezone.utc))
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

    moment = _utc(now or datetime.now(timezone.utc))
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
        source.problems.append("the journal holds no scan result and no readable input, so "
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
            return _utc(entry.at)
    return default


# --- The builder ---------------------------------------------------------------


def build_summary(diagnosis: Mapping[str, Any], facts, entries: Sequence[JournalEntry], *,
                  source: SummarySource, now: datetime) -> IncidentSummary:
    """Build the summary from a diagnosis in its `to_dict` form, facts and journal entries.

    `facts` is the FactSet of the inputs, or None when they are not readable.
    """
    started = _started_data(entries)
    findings = list(diagnosis.get("findings") or [])
    root = _root(findings)
    access = sorted(facts.of(AccessLogEntry), key=_entry_order) if facts is not None else []
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


def _root(findings: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for finding in findings:
        if finding.get("status") in ACTIVE_STATUSES:
            return finding
    return None


def _root_dict(root: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if root is None:
        return None
    return {"cause_id": root["cause_id"], "title": root.get("title", root["cause_id"]),
            "status": root.get("status"), "score": root.get("score"),
            "summary": root.get("summary", ""), "chain": list(root.get("chain") or []),
            "remediation": root.get("remediation", ""), "playbook": root.get("playbook")}


def _entry_order(entry: AccessLogEntry) -> tuple:
    moment = _utc(entry.timestamp) if entry.timestamp else datetime.max.replace(tzinfo=timezone.utc)
    return (moment, entry.source, entry.line)


# --- Symptom and impact --------------------------------------------------------


def build_symptom(diagnosis: Mapping[str, Any], access: Sequence[AccessLogEntry],
                  pods: Sequence[PodInfo]) -> dict[str, Any]:
    """Describe the symptom: codes, flags and details, the first failing path and the hop."""
    symptoms = list(diagnosis.get("symptoms") or [])
    failing = [entry for entry in access if is_failure(entry.response_code, entry.response_flags)]
    callers = [entry for entry in failing if entry.direction == "outbound"] or failing

    codes = Counter((entry.response_code or 0, entry.direction) for entry in failing)
    flags = Counter((",".join(entry.response_flags), entry.direction) for entry in failing
                    if entry.response_flags)
    details = Counter((entry.response_code_details, entry.direction) for entry in failing
                      if entry.response_code_details)
    first = callers[0] if callers else None
    return {
        "ids": [item["id"] for item in symptoms],
        "titles": [item.get("title", item["id"]) for item in symptoms],
        "count": sum(int(item.get("count") or 0) for item in symptoms),
        "first_seen": _first_of(item.get("first_seen") for item in symptoms),
        "last_seen": _last_of(item.get("last_seen") for item in symptoms),
        "response_codes": _counted(codes),
        "response_flags": _counted(flags),
        "response_code_details": _counted(details),
        "first_failing_path": first.path if first else None,
        "first_failure": _evidence_of(first) if first else None,
        "hop": _hop(first, pods) if first else None,
    }


def _counted(counter: Counter) -> list[dict[str, Any]]:
    """List (value, direction) counts; the direction tells the caller's view from the callee's."""
    return [{"value": value, "direction": direction, "count": count}
            for (value, direction), count in counter.most_common()]


def _hop(entry: AccessLogEntry, pods: Sequence[PodInfo]) -> dict[str, Any]:
    caller = workload_of(entry.source, pods)
    callee = service_of(entry.upstream_cluster) or entry.authority
    return {"caller": caller, "callee": callee, "direction": entry.direction,
            "upstream_cluster": entry.upstream_cluster, "upstream_host": entry.upstream_host,
            "authority": entry.authority}


def workload_of(source: str, pods: Sequence[PodInfo]) -> str:
    """Name the workload whose sidecar wrote the log at `source`: `namespace/pod` when known."""
    name = Path(source.split("!")[-1]).name
    for pod in pods:
        if pod.name and pod.name in name:
            return f"{pod.namespace}/{pod.name}" if pod.namespace else pod.name
    stem = name.split(".")[0]
    return stem or source


def service_of(upstream_cluster: str | None) -> str | None:
    """Return `name.namespace` of an Istio cluster such as `outbound|8080||httpbin.default.svc.cluster.local`."""
    if not upstream_cluster:
        return None
    match = _UPSTREAM_CLUSTER.match(upstream_cluster)
    if match is None:
        return upstream_cluster
    host = match["host"]
    if host.endswith(".svc.cluster.local"):
        host = host[: -len(".svc.cluster.local")]
    return host or None


def build_impact(access: Sequence[AccessLogEntry], pods: Sequence[PodInfo], *,
                 readable: bool) -> dict[str, Any]:
    """Measure failed requests and the error rate over time from the access logs.

    Both sidecars of a hop log the same request, so when callers' (outbound)
    entries exist only they are counted, else every entry is.
    """
    if not access:
        reason = ("no access log among the inputs; collect `kubectl logs POD -c istio-proxy` "
                  "of the callers") if readable else "the inputs are no longer readable"
        return {"measured": False, "reason": reason, "basis": None, "requests": 0,
                "failed_requests": 0, "error_rate": 0.0, "first_failure": None,
                "last_failure": None, "bucket_seconds": None, "series": [], "peak": None,
                "affected_workloads": []}

    outbound = [entry for entry in access if entry.direction == "outbound"]
    counted = outbound or list(access)
    failing = [entry for entry in counted if is_failure(entry.response_code, entry.response_flags)]
    series, bucket = error_rate_series(counted)
    peak = max(series, key=lambda point: (point["error_rate"], point["failed"]), default=None)

    affected: dict[str, dict[str, Any]] = {}
    for entry in failing:
        caller = workload_of(entry.source, pods) if entry.direction == "outbound" else None
        callee = service_of(entry.upstream_cluster) or entry.authority
        for role, name in (("caller", caller), ("callee", callee)):
            if not name:
                continue
            item = affected.setdefault(name, {"workload": name, "role": role, "failed": 0})
            item["failed"] += 1

    timed = [entry.timestamp for entry in failing if entry.timestamp]
    return {
        "measured": True,
        "reason": None,
        "basis": "callers' outbound entries" if outbound else "every access-log entry",
        "requests": len(counted),
        "failed_requests": len(failing),
        "error_rate": round(len(failing) / len(counted), 4) if counted else 0.0,
        "first_failure": _iso(min(timed)) if timed else None,
        "last_failure": _iso(max(timed)) if timed else None,
        "bucket_seconds": bucket,
        "series": series,
        "peak": peak if peak and peak["failed"] else None,
        "affected_workloads": sorted(affected.values(), key=lambda item: -item["failed"]),
    }


def error_rate_series(entries: Iterable[AccessLogEntry]) -> tuple[list[dict[str, Any]], int | None]:
    """Count requests and failures per time bucket, gaps included.

    Returns the series and the bucket width in seconds; the width is the
    narrowest of BUCKET_SECONDS that keeps the series within SERIES_POINTS.
    NOTE: doctor.logstats summarises whole files per minute; this works on
    parsed facts because the summary reads bundles and archives too.
    """
    timed = [entry for entry in entries if entry.timestamp is not None]
    if not timed:
        return [], None
    first = min(_utc(entry.timestamp) for entry in timed)
    last = max(_utc(entry.timestamp) for entry in timed)
    span = (last - first).total_seconds()
    bucket = next((width for width in BUCKET_SECONDS if span / width < SERIES_POINTS),
                  BUCKET_SECONDS[-1])

    origin = _floor(first, bucket)
    requests: Counter = Counter()
    failures: Counter = Counter()
    for entry in timed:
        index = int((_utc(entry.timestamp) - origin).total_seconds() // bucket)
        requests[index] += 1
        if is_failure(entry.response_code, entry.response_flags):
            failures[index] += 1

    count = max(requests) + 1
    series = []
    for index in range(count):
        total = requests[index]
        failed = failures[index]
        series.append({"start": _iso(origin + timedelta(seconds=index * bucket)),
                       "requests": total, "failed": failed,
                       "error_rate": round(failed / total, 4) if total else 0.0})
    return series, bucket


def _floor(moment: datetime, seconds: int) -> datetime:
    epoch = moment.timestamp()
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=timezone.utc)


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
        "evidence_for": [_evidence_ref(item) for item in supporting[:EVIDENCE_KEPT]],
        "evidence_against": [_evidence_ref(item) for item in against[:EVIDENCE_KEPT]],
        "evidence_omitted": max(0, len(supporting) - EVIDENCE_KEPT)
        + max(0, len(against) - EVIDENCE_KEPT),
        "checks": [{"check_id": check["check_id"], "role": check.get("role"),
                    "result": check.get("result"), "reason": check.get("reason", "")}
                   for check in finding.get("checks") or []],
    }


def _evidence_ref(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"source": item.get("source", ""), "line": item.get("line"),
            "text": _shorten(item.get("text") or "", 400), "note": item.get("note") or ""}


def _evidence_of(entry: AccessLogEntry) -> dict[str, Any]:
    return {"source": entry.source, "line": entry.line, "text": _shorten(entry.text, 400),
            "note": ""}


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


# --- Resolution ----------------------------------------------------------------


def build_resolution(root: Mapping[str, Any] | None, entries: Sequence[JournalEntry],
                     symptom: Mapping[str, Any]) -> dict[str, Any]:
    """Describe the change: applied (from the journal) or proposed (from the root's playbook)."""
    resolution: dict[str, Any] = {
        "state": "none", "step": None, "change": None, "dry_run": None, "rollback": None,
        "confirmed_by": None, "confirmed_at": None, "applied_at": None, "exit_status": None,
        "verification": None, "verify_step": None, "rolled_back": False,
        "remediation": (root or {}).get("remediation", ""),
    }
    if root is None:
        return resolution

    playbook_step = _remediate_step(root.get("playbook"), symptom)
    if playbook_step is not None:
        resolution.update(state="proposed", step=playbook_step["id"],
                          change=playbook_step["command"], dry_run=playbook_step["dry_run"],
                          rollback=playbook_step["rollback"])
        resolution["verify_step"] = playbook_step["verify"]

    for entry in entries:
        data = entry.data
        if entry.kind == CONFIRMATION and data.get("action") in ("apply", "rollback"):
            resolution["confirmed_by"] = entry.actor
            resolution["confirmed_at"] = _iso(entry.at)
            resolution["step"] = data.get("step") or resolution["step"]
            if data.get("action") == "apply" and data.get("argv"):
                resolution["change"] = [str(part) for part in data["argv"]]
            if data.get("dry_run"):
                resolution["dry_run"] = [str(part) for part in data["dry_run"]]
            if data.get("rollback"):
                resolution["rollback"] = [str(part) for part in data["rollback"]]
        if entry.kind != COMMAND or not data.get("argv"):
            continue
        argv = [str(part) for part in data["argv"]]
        role = data.get("role") or data.get("purpose")
        succeeded = data.get("exit_status") == 0
        if role == "dry_run":
            resolution["dry_run"] = argv
        elif role in ("apply", "change"):
            resolution.update(state="applied" if succeeded else "failed", change=argv,
                              applied_at=_iso(entry.at), exit_status=data.get("exit_status"),
                              step=data.get("step") or resolution["step"])
        elif role == "rollback":
            resolution["rollback"] = argv
            if succeeded:
                resolution["rolled_back"] = True
                resolution["state"] = "rolled_back"

    for entry in entries:
        data = entry.data
        if entry.kind == STEP_RESULT and data.get("kind") == "remediate" and \
                data.get("result") in ("refused", "skipped") and resolution["state"] == "proposed":
            resolution["state"] = data["result"]
            resolution["step"] = data.get("step") or resolution["step"]

    verification = _verification(entries, resolution)
    if verification is not None:
        resolution["verification"] = verification
        if verification["result"] == "passed" and resolution["state"] == "applied":
            resolution["state"] = "verified"
    return resolution


def _verification(entries: Sequence[JournalEntry], resolution: Mapping[str, Any]
                  ) -> dict[str, Any] | None:
    applied_at = resolution.get("applied_at")
    if applied_at is None:
        return None
    verify_steps = {resolution.get("verify_step")}
    for entry in entries:
        if entry.kind == STEP_STARTED and entry.data.get("verifies"):
            verify_steps.add(entry.data.get("step"))
    verify_steps.discard(None)

    found = None
    for entry in entries:
        if entry.kind != STEP_RESULT or _iso(entry.at) < applied_at:
            continue
        if entry.data.get("step") in verify_steps:
            found = {"step": entry.data.get("step"), "result": entry.data.get("result"),
                     "at": _iso(entry.at), "reason": entry.data.get("reason") or ""}
    return found


def _remediate_step(playbook_id: str | None, symptom: Mapping[str, Any]) -> dict[str, Any] | None:
    if not playbook_id:
        return None
    try:
        from doctor.playbooks import load_playbooks

        playbook = load_playbooks().get(playbook_id)
    except Exception as error:  # the summary still renders without the playbook
        logger.warning("playbook %s could not be loaded for the summary: %s", playbook_id, error)
        return None
    if playbook is None:
        return None

    values = _placeholder_values(symptom)
    for step in playbook.steps:
        if step.kind == "remediate" and step.command:
            return {"id": step.id, "command": _fill(step.command, values),
                    "dry_run": _fill(step.dry_run, values) if step.dry_run else None,
                    "rollback": _fill(step.rollback, values) if step.rollback else None,
                    "verify": step.verify}
    return None


def _placeholder_values(symptom: Mapping[str, Any]) -> dict[str, str]:
    hop = symptom.get("hop") or {}
    callee = hop.get("callee") or ""
    name, _, namespace = callee.partition(".")
    values = {}
    if name:
        values["service"] = name
        values["deployment"] = name
    if namespace:
        values["namespace"] = namespace.split(".")[0]
    return values


def _fill(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    filled = []
    for part in argv:
        for key, value in values.items():
            part = part.replace("{" + key + "}", value)
        filled.append(part)
    return filled


# --- Timeline and milestones ---------------------------------------------------


def build_timeline(entries: Sequence[JournalEntry], diagnosis: Mapping[str, Any],
                   access: Sequence[AccessLogEntry], pods: Sequence[PodInfo],
                   events: Sequence[KubeEvent], now: datetime,
                   journal_path: str | None = None) -> list[dict[str, Any]]:
    """Merge what the evidence shows happened with what the session did, in time order."""
    timeline: list[dict[str, Any]] = []
    for item in diagnosis.get("symptoms") or []:
        if item.get("first_seen"):
            first = (item.get("evidence") or [{}])[0]
            timeline.append(_event(item["first_seen"], "evidence", "symptom",
                                   f"First {item.get('title', item['id'])} in the evidence",
                                   first if first else None))
        if item.get("last_seen") and item.get("last_seen") != item.get("first_seen"):
            timeline.append(_event(item["last_seen"], "evidence", "symptom",
                                   f"Last {item.get('title', item['id'])} in the evidence "
                                   f"({item.get('count', 0)} in all)", None))

    for pod in pods:
        for container in pod.containers:
            if container.last_state_reason and container.last_finished_at:
                timeline.append(_event(
                    _iso(container.last_finished_at), "evidence", "symptom",
                    f"Container {container.name} of {pod.namespace}/{pod.name} terminated: "
                    f"{container.last_state_reason}, exit code {container.last_exit_code}",
                    {"source": pod.source, "line": container.last_state_line or container.line,
                     "text": "", "note": ""}))
    for event in events:
        moment = event.last_timestamp or event.first_timestamp
        if moment is None or event.event_type == "Normal":
            continue
        timeline.append(_event(_iso(moment), "kubernetes", "symptom",
                               f"{event.reason}: {event.involved_kind}/{event.involved_name}: "
                               f"{_shorten(event.message, 160)}",
                               {"source": event.source, "line": event.line, "text": "", "note": ""}))

    if entries:
        timeline.extend(_journal_timeline(entries, journal_path))
    else:
        scanned = diagnosis.get("generated_at") or _iso(now)
        inputs = len(diagnosis.get("inputs") or [])
        timeline.append(_event(scanned, "mesh-doctor", "check",
                               f"Scanned {inputs} inputs", None))
        root = _root(diagnosis.get("findings") or [])
        if root is not None:
            timeline.append(_event(scanned, "mesh-doctor", "finding",
                                   f"Ranked {root.get('title', root['cause_id'])} first "
                                   f"({root.get('status')})", _first_evidence(root)))

    return sorted(timeline, key=lambda item: item["at"] or "")


def _journal_timeline(entries: Sequence[JournalEntry], journal_path: str | None
                      ) -> list[dict[str, Any]]:
    """Describe the journal entries; each links to its journal line (the entry's sequence number)."""
    timeline = []
    for entry in entries:
        described = _describe_entry(entry)
        if described is None:
            continue
        kind, text = described
        link = {"source": journal_path or "journal.jsonl", "line": entry.seq, "text": "",
                "note": f"journal entry {entry.seq}"}
        timeline.append(_event(_iso(entry.at), entry.actor, kind, text, link))
    return timeline


def _describe_entry(entry: JournalEntry) -> tuple[str, str] | None:
    data = entry.data
    if entry.kind == SESSION_STARTED:
        where = ", ".join(str(path) for path in data.get("paths") or []) or "no inputs"
        playbook = f" with playbook {data['playbook']}" if data.get("playbook") else ""
        return "milestone", f"Session started on {where}{playbook}"
    if entry.kind == SCAN:
        return "check", f"Scanned {len(data.get('paths') or [])} input path(s)"
    if entry.kind == FINDING:
        return "finding", f"Finding {data.get('cause_id')}: {data.get('status', 'noted')}"
    if entry.kind == STEP_STARTED:
        return None
    if entry.kind == STEP_RESULT:
        # The answer entry already records an answered question.
        return None if data.get("kind") == "ask" else _describe_step_result(data)
    if entry.kind == ANSWER:
        if data.get("placeholder"):
            return "decision", f"Set {{{data['placeholder']}}} to {data.get('value')}"
        return "decision", f"Step {data.get('step')}: answered {data.get('answer')}"
    if entry.kind == COMMAND:
        role = data.get("role") or data.get("purpose") or "check"
        kind = {"apply": "action", "change": "action", "rollback": "rollback"}.get(role, "check")
        status = data.get("exit_status")
        ended = f", exit status {status}" if status is not None else \
            f", {data.get('status') or 'not run'}"
        return kind, f"Ran ({role}) `{_argv_text(data.get('argv') or [])}`{ended}"
    if entry.kind == CONFIRMATION:
        return _describe_confirmation(entry)
    if entry.kind == MILESTONE:
        if data.get("verified"):
            return "milestone", (f"Verify step {data.get('by')} passed for change "
                                 f"{data['verified']}")
        return "milestone", f"Marked {data.get('name')}" + (
            f": {data['note']}" if data.get("note") else "")
    if entry.kind == NOTE:
        return "note", _note_text(data)
    if entry.kind == SESSION_ENDED:
        return "milestone", f"Session ended: {data.get('reason') or data.get('status') or 'closed'}"
    return None


def _describe_step_result(data: Mapping[str, Any]) -> tuple[str, str]:
    reason = f" ({last_line(data['reason'])})" if data.get("reason") else ""
    step_kind = data.get("kind")
    kind = {"remediate": "action"}.get(step_kind, "check" if step_kind == "check" else "note")
    if data.get("result") == "rolled_back":
        kind = "rollback"
    return kind, f"Step {data.get('step')}: {data.get('result', 'recorded')}{reason}"


def _describe_confirmation(entry: JournalEntry) -> tuple[str, str]:
    data = entry.data
    if data.get("action") == "context":
        return "decision", (f"{entry.actor} accepted kube context {data.get('context')} "
                            f"(was {data.get('previous')})")
    argv = _argv_text(data.get("argv") or [])
    return "decision", f"{entry.actor} confirmed {data.get('action', 'apply')} of `{argv}`"


def _note_text(data: Mapping[str, Any]) -> str:
    if data.get("text"):
        return str(data["text"])
    if data.get("resumed"):
        return f"Session resumed at step {data.get('at_step')}"
    changed = data.get("context_changed")
    if isinstance(changed, dict):
        return f"Kube context changed from {changed.get('from')} to {changed.get('to')}"
    if isinstance(data.get("action_item"), dict):
        return f"Action item: {data['action_item'].get('text')}"
    return ", ".join(f"{key}={value}" for key, value in sorted(data.items()))


def _event(at: str | None, actor: str, kind: str, text: str,
           evidence: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"at": _iso(at), "actor": actor, "kind": kind if kind in TIMELINE_KINDS else "note",
            "text": text, "evidence": _evidence_ref(evidence) if evidence else None}


def _first_evidence(finding: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for item in finding.get("evidence") or []:
        if item.get("supports", True):
            return item
    return None


def build_milestones(entries: Sequence[JournalEntry], impact: Mapping[str, Any],
                     symptom: Mapping[str, Any], root: Mapping[str, Any] | None,
                     resolution: Mapping[str, Any], now: datetime
                     ) -> tuple[list[dict[str, Any]], list[str]]:
    """Place each milestone in UTC with what it is based on, and report any out of order."""
    found: dict[str, tuple[datetime, str]] = {}

    first_failure = impact.get("first_failure") or symptom.get("first_seen")
    if first_failure:
        found["started"] = (_parse(first_failure), "first failing request in the evidence")

    for entry in entries:
        data = entry.data
        if entry.kind == SESSION_STARTED and "detected" not in found:
            found["detected"] = (_utc(entry.at), "session started")
        if entry.kind == FINDING and "identified" not in found and \
                data.get("status") in ("confirmed", "likely"):
            found["identified"] = (_utc(entry.at), f"finding {data.get('cause_id')} recorded")
    if resolution.get("applied_at") and resolution.get("state") in ("applied", "verified"):
        found["mitigated"] = (_parse(resolution["applied_at"]), "change applied")
    verification = resolution.get("verification") or {}
    if verification.get("result") == "passed":
        found["resolved"] = (_parse(verification["at"]), f"verify step {verification['step']} passed")
    for entry in entries:
        if entry.kind == MILESTONE and entry.data.get("verified") and "resolved" not in found:
            found["resolved"] = (_utc(entry.at), f"verify step {entry.data.get('by')} passed")
        ended_resolved = entry.data.get("verified") or entry.data.get("status") == "resolved"
        if entry.kind == SESSION_ENDED and ended_resolved and "resolved" not in found:
            found["resolved"] = (_utc(entry.at), "session ended with the change verified")

    if not entries:
        found.setdefault("detected", (now, "time of the scan (no earlier detection recorded)"))
        if root is not None and root.get("status") in ("confirmed", "likely"):
            found.setdefault("identified", (now, "root cause ranked by the scan"))

    for entry in entries:
        if entry.kind == MILESTONE and entry.data.get("name") in MILESTONES:
            moment = _parse(entry.data["at"]) if entry.data.get("at") else _utc(entry.at)
            found[entry.data["name"]] = (moment, f"marked by {entry.actor}")

    milestones = [{"name": name, "at": _iso(found[name][0]) if name in found else None,
                   "basis": found[name][1] if name in found else "not reached"}
                  for name in MILESTONES]
    problems = []
    previous = None
    for item in milestones:
        if item["at"] is None:
            continue
        if previous is not None and item["at"] < previous["at"]:
            problems.append(f"milestone {item['name']} ({item['at']}) is before "
                            f"{previous['name']} ({previous['at']}); check the marked times")
        previous = item
    return milestones, problems


def build_durations(milestones: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Derive the time from each reached milestone to the next one reached, and the total."""
    reached = [item for item in milestones if item["at"]]
    durations = []
    for earlier, later in zip(reached, reached[1:]):
        seconds = (_parse(later["at"]) - _parse(earlier["at"])).total_seconds()
        durations.append({"name": DURATION_NAMES.get(later["name"], later["name"]),
                          "from": earlier["name"], "to": later["name"],
                          "seconds": seconds, "text": format_seconds(seconds)})
    if len(reached) > 2:
        seconds = (_parse(reached[-1]["at"]) - _parse(reached[0]["at"])).total_seconds()
        durations.append({"name": "total", "from": reached[0]["name"], "to": reached[-1]["name"],
                          "seconds": seconds, "text": format_seconds(seconds)})
    return durations


def format_seconds(seconds: float) -> str:
    """Write a duration as `1h 02m`, `3m 05s` or `4.2s`; a negative one keeps its sign."""
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{sign}{minutes}m {rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}h {minutes:02d}m"


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
    for entry in entries:
        if entry.kind != STEP_RESULT or entry.data.get("kind", "check") != "check":
            continue
        data = entry.data
        check_id = f"{playbook}.{data.get('step')}"
        result = data.get("result")
        if result in ("could_not_run", "skipped", "shown"):
            not_performed.append({"check_id": check_id, "cause_id": data.get("cause_id"),
                                  "by": entry.actor,
                                  "reason": last_line(data.get("reason") or "") or result})
        else:
            detail = last_line(data.get("reason") or "")
            performed.append({"check_id": check_id, "cause_id": data.get("cause_id"),
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
        what = ", ".join(symptom.get("titles") or []) or "No symptom found"
        where = f" from {hop['caller']} to {hop['callee']}" if hop.get("caller") else ""
        why = f": {root.get('title', root['cause_id'])}" if root is not None else ""
        title = f"{what}{where}{why}"

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
    """Write one to three sentences: what failed, why, and where the fix stands."""
    hop = symptom.get("hop") or {}
    codes = _code_list(symptom)
    sentences = []
    if impact.get("measured") and impact.get("failed_requests"):
        between = f" from {hop['caller']} to {hop['callee']}" if hop.get("caller") else ""
        sentences.append(
            f"{impact['failed_requests']} of {impact['requests']} requests{between} failed "
            f"({impact['error_rate'] * 100:.1f}%) with {codes or 'no response'} between "
            f"{_clock(impact['first_failure'])} and {_clock(impact['last_failure'])} UTC.")
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
        lines.append(f"Change ({state}): `{_argv_text(resolution['change'])}`"
                     + (f"; rollback: `{_argv_text(resolution['rollback'])}`"
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


def last_line(text: str, limit: int = 200) -> str:
    """Return the last non-empty line of a command's message, where tools put the summary."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return _shorten(lines[-1], limit) if lines else ""


def _code_list(symptom: Mapping[str, Any]) -> str:
    codes = []
    for item in symptom.get("response_codes") or []:
        if item["value"] not in codes:
            codes.append(item["value"])
    return ", ".join(str(code) for code in codes)


def _argv_text(argv: Sequence[Any]) -> str:
    import shlex

    return " ".join(shlex.quote(str(part)) for part in argv)


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _iso(moment: datetime | str | None) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = _parse(moment)
    return _utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return _utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _clock(text: str | None) -> str:
    return _parse(text).strftime("%Y-%m-%d %H:%M:%S") if text else "?"


def _first_of(values: Iterable[str | None]) -> str | None:
    present = [_iso(value) for value in values if value]
    return min(present) if present else None


def _last_of(values: Iterable[str | None]) -> str | None:
    present = [_iso(value) for value in values if value]
    return max(present) if present else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
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

