"""Packet capture with tcpdump in an ephemeral debug container, only after the engineer confirms.

`kubectl debug` adds an ephemeral container to the pod (a PATCH of its
`ephemeralcontainers` subresource, so the runner classifies it as mutating
and it runs only with `allow_mutation=True`). The container targets the app
container's process namespace and captures on every interface of the pod's
network namespace, which the app and its sidecar share, so traffic between
them on loopback is seen as well as the pod's own traffic.

The capture is bounded three ways: `timeout SECONDS`, `-c PACKETS` and
`-s SNAPLEN` bytes per packet. The log read back is limited to
PACKETS × (SNAPLEN + 200) bytes of text. Ephemeral containers cannot be
removed from a pod, so clean-up means the container has terminated: the
probe waits for that and states in its reason whether it saw it.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import replace

from doctor.live.context import ProbeContext
from doctor.live.kubeapi import api_get
from doctor.live.registry import Permission, ProbeRegistry, Target
from doctor.model import Observation, ProbeStatus

PROBE_ID = "capture.tcpdump"
POLL_INTERVAL_S = 1.0
# Time a debug container may need to be scheduled and pull its image, beyond the capture itself.
START_ALLOWANCE_S = 60.0


def describe_capture(context: ProbeContext, target: Target) -> str:
    """Return what the capture will do, for the confirmation question."""
    options = context.options
    return (f"add an ephemeral debug container ({options.capture_image}) to pod {target.namespace}/{target.pod} "
            f"targeting container {target.app_container or 'the first container'}, and run tcpdump for at most "
            f"{options.capture_seconds} s or {options.capture_packets} packets of {options.capture_snaplen} bytes; "
            "the container stays in the pod spec, terminated, until the pod is replaced")


def tcpdump(context: ProbeContext, target: Target) -> Observation:
    """Capture packets in the pod's network namespace through a debug container, after confirmation."""
    options = context.options
    description = describe_capture(context, target)
    if not (options.allow_capture or context.confirm_capture(description)):
        return _not_confirmed(context, target)

    name = f"mesh-doctor-capture-{secrets.token_hex(3)}"
    command = ["timeout", str(options.capture_seconds), "tcpdump", "-nn", "-l", "-i", "any",
               "-c", str(options.capture_packets), "-s", str(options.capture_snaplen)]
    argv = context.kubectl("debug", target.pod, "-n", target.namespace, f"--image={options.capture_image}",
                           f"--container={name}", "--profile=netadmin", "--quiet")
    if target.app_container:
        argv.append(f"--target={target.app_container}")
    started = context.runner.run(argv + ["--", *command], probe_id=PROBE_ID, target=target.label(),
                                 allow_mutation=True, timeout=options.probe_timeout_s)
    if started.status is not ProbeStatus.OK:
        return started

    terminated, cleanup_note = _wait_terminated(context, target, name,
                                                options.capture_seconds + START_ALLOWANCE_S)
    limit = options.capture_packets * (options.capture_snaplen + 200)
    logs = context.runner.run(context.kubectl("logs", target.pod, "-n", target.namespace, "-c", name,
                                              f"--limit-bytes={limit}"),
                              probe_id=PROBE_ID, target=target.label(), timeout=options.probe_timeout_s)
    reason = "; ".join(part for part in (logs.reason, cleanup_note) if part)
    status = logs.status if terminated or logs.status is not ProbeStatus.OK else ProbeStatus.FAILED
    return replace(logs, argv=started.argv, started_at=started.started_at, status=status, reason=reason,
                   duration_s=round(started.duration_s + logs.duration_s, 6))


def _not_confirmed(context: ProbeContext, target: Target) -> Observation:
    from datetime import datetime, timezone

    return Observation(probe_id=PROBE_ID, argv=(), started_at=datetime.now(timezone.utc), duration_s=0.0,
                       exit_status=None, status=ProbeStatus.UNAVAILABLE, output="",
                       reason="packet capture was not confirmed, so nothing ran; confirm it in the UI or rerun "
                              "with --allow-capture", target=target.label())


def _wait_terminated(context: ProbeContext, target: Target, name: str, budget_s: float) -> tuple[bool, str]:
    """Poll the pod until the debug container has terminated; return (terminated, note for the reason)."""
    deadline = time.monotonic() + budget_s
    last_state = "not reported"
    while time.monotonic() < deadline:
        pod = api_get(context, PROBE_ID, f"/api/v1/namespaces/{target.namespace}/pods/{target.pod}", target)
        if pod.status is ProbeStatus.OK:
            for status in json.loads(pod.output).get("status", {}).get("ephemeralContainerStatuses", []):
                if status.get("name") != name:
                    continue
                state = status.get("state", {})
                if "terminated" in state:
                    exit_code = state["terminated"].get("exitCode")
                    return True, f"clean-up verified: debug container {name} terminated with exit code {exit_code}"
                last_state = next(iter(state), "unknown")
        time.sleep(POLL_INTERVAL_S)
    return False, (f"clean-up NOT verified: debug container {name} was still {last_state} after {budget_s:g} s; "
                   f"it stops by itself within {context.options.capture_seconds} s of starting (timeout)")


def register(registry: ProbeRegistry) -> None:
    registry.register(PROBE_ID, tcpdump,
                      "tcpdump in an ephemeral debug container sharing the pod's network namespace "
                      "(intrusive: runs only after confirmation or with --allow-capture)",
                      scope="pod", programs=("kubectl",),
                      permissions=(Permission("patch", "pods", "ephemeralcontainers"), Permission("get", "pods"),
                                   Permission("get", "pods", "log")),
                      evidence_for=("upstream-connect-failure", "upstream-app-down", "mtu-blackhole",
                                    "request-timeout", "plaintext-to-strict"),
                      intrusive=True, timeout_s=START_ALLOWANCE_S + 120.0)
