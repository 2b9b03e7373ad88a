"""The clock-drift probe: compares the times the cluster reports with each other.

Three clocks are compared: this machine's, the API server's (the `Date`
header of its response, one-second resolution) and each node's (the kubelet
writes the Ready condition's `lastHeartbeatTime` with the node's clock).
A heartbeat later than the API server's time proves that the node's clock
runs ahead by at least the difference. A heartbeat that is old proves
nothing on its own, because with node leases the kubelet rewrites its
status only every `nodeStatusReportFrequency` (an estimated 5 minutes by
default) when nothing changed. So each output line states how sure it is.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from doctor.live.context import ProbeContext
from doctor.live.kubeapi import api_get
from doctor.live.registry import Permission, ProbeRegistry, Target
from doctor.model import Observation, ProbeStatus

# An estimate: the kubelet's nodeStatusReportFrequency, 5 minutes by default in kubelets
# that renew a node lease; a cluster may configure it shorter.
STATUS_REPORT_PERIOD_S = 300.0


def clock_drift(context: ProbeContext, target: Target) -> Observation:
    """Compare this machine's clock, the API server's Date header and every node's last heartbeat."""
    headers: dict[str, str] = {}
    local_before = datetime.now(timezone.utc)
    listing = api_get(context, "clock.drift", "/api/v1/nodes", target, headers_out=headers)
    local_after = datetime.now(timezone.utc)
    if listing.status is not ProbeStatus.OK:
        return listing

    lines = []
    server_time = _server_time(headers)
    round_trip = (local_after - local_before).total_seconds()
    if server_time is None:
        lines.append("API server time: unknown (no Date header); node heartbeats are compared with this "
                     "machine's clock")
        reference = local_after
    else:
        local_mid = local_before + (local_after - local_before) / 2
        offset = (local_mid - server_time).total_seconds()
        lines.append(f"API server time {server_time.isoformat()} (Date header, 1 s resolution); this machine "
                     f"minus the API server: {offset:+.1f} s, uncertain by ±{1 + round_trip:.1f} s")
        reference = server_time

    for name, heartbeat in _heartbeats(listing.output):
        if heartbeat is None:
            lines.append(f"node {name}: no Ready heartbeat reported; cannot judge its clock")
            continue
        ahead = (heartbeat - reference).total_seconds()
        if ahead > 1 + round_trip:
            verdict = (f"the node's clock runs ahead by at least {ahead - 1 - round_trip:.0f} s "
                       "(certain: a heartbeat cannot come from the future)")
        elif -ahead <= STATUS_REPORT_PERIOD_S:
            verdict = "consistent with the API server's clock within the status report period"
        else:
            verdict = (f"heartbeat {-ahead:.0f} s old: the node stopped reporting or its clock runs behind; "
                       "this probe cannot tell which (compare with `date -u` on the node)")
        lines.append(f"node {name}: Ready heartbeat {heartbeat.isoformat()}; {verdict}")

    return replace(listing, output="\n".join(lines) + "\n")


def _server_time(headers: dict[str, str]) -> datetime | None:
    value = next((v for k, v in headers.items() if k.lower() == "date"), None)
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(timezone.utc)
    except (TypeError, ValueError):
        return None


def _heartbeats(output: str) -> list[tuple[str, datetime | None]]:
    try:
        items = json.loads(output).get("items", [])
    except (ValueError, AttributeError):
        return []
    result = []
    for node in items:
        name = node.get("metadata", {}).get("name", "?")
        heartbeat = None
        for condition in node.get("status", {}).get("conditions", []):
            if condition.get("type") == "Ready" and condition.get("lastHeartbeatTime"):
                try:
                    heartbeat = datetime.fromisoformat(condition["lastHeartbeatTime"].replace("Z", "+00:00"))
                except ValueError:
                    heartbeat = None
        result.append((name, heartbeat))
    return result


def register(registry: ProbeRegistry) -> None:
    registry.register("clock.drift", clock_drift,
                      "Clock drift: this machine, the API server's Date header and node heartbeats compared",
                      scope="cluster", permissions=(Permission("list", "nodes"),),
                      evidence_for=("clock-drift", "jwt-expired", "jwt-not-yet-valid"))
