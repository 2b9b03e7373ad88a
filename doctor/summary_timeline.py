"""The timeline, the milestones and the resolution of an incident.

Owns how journal entries and timed evidence become timeline entries, and
where each milestone falls (from the journal, the evidence or the scan),
with the times between milestones. It also owns the resolution, which is
the change the root cause's playbook proposes, or the one the session
applied, confirmed and verified.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Mapping, Sequence

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
)
from doctor.parsers.accesslog import AccessLogEntry
from doctor.parsers.kube import KubeEvent, PodInfo
from doctor.summary_values import (
    argv_text,
    evidence_ref,
    format_seconds,
    iso,
    last_line,
    parse_iso,
    root_finding,
    shorten,
    utc,
)

logger = logging.getLogger(__name__)

MILESTONES = ("started", "detected", "identified", "mitigated", "resolved")
DURATION_NAMES = {
    "detected": "time to detect",
    "identified": "time to identify",
    "mitigated": "time to mitigate",
    "resolved": "time to resolve",
}
TIMELINE_KINDS = ("symptom", "check", "finding", "decision", "action", "rollback", "milestone",
                  "note")


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

    values = _placeholder_values(symptom)
    for entry in entries:
        if entry.kind == SESSION_STARTED and isinstance(entry.data.get("values"), dict):
            values.update({str(key): str(value) for key, value in entry.data["values"].items()})
        if entry.kind == ANSWER and entry.data.get("placeholder"):
            values[str(entry.data["placeholder"])] = str(entry.data.get("value") or "")
    playbook_step = _remediate_step(root.get("playbook"), values)
    if playbook_step is not None:
        resolution.update(state="proposed", step=playbook_step["id"],
                          change=playbook_step["command"], dry_run=playbook_step["dry_run"],
                          rollback=playbook_step["rollback"])
        resolution["verify_step"] = playbook_step["verify"]

    for entry in entries:
        data = entry.data
        if entry.kind == CONFIRMATION and data.get("action") in ("apply", "rollback"):
            resolution["confirmed_by"] = entry.actor
            resolution["confirmed_at"] = iso(entry.at)
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
                              applied_at=iso(entry.at), exit_status=data.get("exit_status"),
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
        if entry.kind != STEP_RESULT or iso(entry.at) < applied_at:
            continue
        if entry.data.get("step") in verify_steps:
            found = {"step": entry.data.get("step"), "result": entry.data.get("result"),
                     "at": iso(entry.at), "reason": entry.data.get("reason") or ""}
    return found


def _remediate_step(playbook_id: str | None, values: Mapping[str, str]) -> dict[str, Any] | None:
    """Return the first remediate step of the playbook, its commands filled from `values`."""
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

    from doctor.session import fill

    for step in playbook.steps:
        if step.kind == "remediate" and step.command:
            return {"id": step.id, "command": list(fill(step.command, values)),
                    "dry_run": list(fill(step.dry_run, values)) if step.dry_run else None,
                    "rollback": list(fill(step.rollback, values)) if step.rollback else None,
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
                    iso(container.last_finished_at), "evidence", "symptom",
                    f"Container {container.name} of {pod.namespace}/{pod.name} terminated: "
                    f"{container.last_state_reason}, exit code {container.last_exit_code}",
                    {"source": pod.source, "line": container.last_state_line or container.line,
                     "text": "", "note": ""}))
    for event in events:
        moment = event.last_timestamp or event.first_timestamp
        if moment is None or event.event_type == "Normal":
            continue
        timeline.append(_event(iso(moment), "kubernetes", "symptom",
                               f"{event.reason}: {event.involved_kind}/{event.involved_name}: "
                               f"{shorten(event.message, 160)}",
                               {"source": event.source, "line": event.line, "text": "", "note": ""}))

    if entries:
        timeline.extend(_journal_timeline(entries, journal_path))
    else:
        scanned = diagnosis.get("generated_at") or iso(now)
        inputs = len(diagnosis.get("inputs") or [])
        timeline.append(_event(scanned, "mesh-doctor", "check",
                               f"Scanned {inputs} inputs", None))
        root = root_finding(diagnosis.get("findings") or [])
        if root is not None:
            timeline.append(_event(scanned, "mesh-doctor", "finding",
                                   f"Ranked {root.get('title', root['cause_id'])} first "
                                   f"({root.get('status')})", _first_evidence(root)))

    # The same pod status often arrives in several inputs (JSON, YAML, one pod or the list).
    unique = []
    seen = set()
    for item in timeline:
        key = (item["at"], item["kind"], item["text"])
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return sorted(unique, key=lambda item: item["at"] or "")


def _journal_timeline(entries: Sequence[JournalEntry], journal_path: str | None
                      ) -> list[dict[str, Any]]:
    """Describe the journal entries, each linked to its journal line (the entry's sequence number)."""
    timeline = []
    for entry in entries:
        described = _describe_entry(entry)
        if described is None:
            continue
        kind, text = described
        link = {"source": journal_path or "journal.jsonl", "line": entry.seq, "text": "",
                "note": f"journal entry {entry.seq}"}
        timeline.append(_event(iso(entry.at), entry.actor, kind, text, link))
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
        return kind, f"Ran ({role}) `{argv_text(data.get('argv') or [])}`{ended}"
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
    argv = argv_text(data.get("argv") or [])
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
    return {"at": iso(at), "actor": actor, "kind": kind if kind in TIMELINE_KINDS else "note",
            "text": text, "evidence": evidence_ref(evidence) if evidence else None}


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
        found["started"] = (parse_iso(first_failure), "first failing request in the evidence")

    for entry in entries:
        data = entry.data
        if entry.kind == SESSION_STARTED and "detected" not in found:
            found["detected"] = (utc(entry.at), "session started")
        if entry.kind == FINDING and "identified" not in found and \
                data.get("status") in ("confirmed", "likely"):
            found["identified"] = (utc(entry.at), f"finding {data.get('cause_id')} recorded")
    if resolution.get("applied_at") and resolution.get("state") in ("applied", "verified"):
        found["mitigated"] = (parse_iso(resolution["applied_at"]), "change applied")
    verification = resolution.get("verification") or {}
    if verification.get("result") == "passed":
        found["resolved"] = (parse_iso(verification["at"]), f"verify step {verification['step']} passed")
    for entry in entries:
        if entry.kind == MILESTONE and entry.data.get("verified") and "resolved" not in found:
            found["resolved"] = (utc(entry.at), f"verify step {entry.data.get('by')} passed")
        ended_resolved = entry.data.get("verified") or entry.data.get("status") == "resolved"
        if entry.kind == SESSION_ENDED and ended_resolved and "resolved" not in found:
            found["resolved"] = (utc(entry.at), "session ended with the change verified")

    if not entries:
        found.setdefault("detected", (now, "time of the scan (no earlier detection recorded)"))
    identified_by_scan = root is not None and root.get("status") in ("confirmed", "likely")
    if identified_by_scan and "identified" not in found and "detected" in found:
        found["identified"] = (found["detected"][0], "root cause ranked by the scan")

    for entry in entries:
        if entry.kind == MILESTONE and entry.data.get("name") in MILESTONES:
            moment = parse_iso(entry.data["at"]) if entry.data.get("at") else utc(entry.at)
            found[entry.data["name"]] = (moment, f"marked by {entry.actor}")

    milestones = [{"name": name, "at": iso(found[name][0]) if name in found else None,
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
        seconds = (parse_iso(later["at"]) - parse_iso(earlier["at"])).total_seconds()
        durations.append({"name": DURATION_NAMES.get(later["name"], later["name"]),
                          "from": earlier["name"], "to": later["name"],
                          "seconds": seconds, "text": format_seconds(seconds)})
    if len(reached) > 2:
        seconds = (parse_iso(reached[-1]["at"]) - parse_iso(reached[0]["at"])).total_seconds()
        durations.append({"name": "total", "from": reached[0]["name"], "to": reached[-1]["name"],
                          "seconds": seconds, "text": format_seconds(seconds)})
    return durations
