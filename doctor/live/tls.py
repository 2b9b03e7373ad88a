"""The TLS probe: `openssl s_client` through `kubectl port-forward` to a pod's port.

It records the certificate chain, expiry and SAN that the listener on the
port presents, and whether a client without a certificate gets through.
TLS 1.2 is pinned, so a server that requires client certificates rejects
the handshake before s_client exits.

A port-forwarded connection enters the pod's network namespace on
127.0.0.1, and Istio's iptables rules do not redirect loopback traffic to
the sidecar. So the probe connects to the listener that really owns the port: an
ingress gateway's Envoy, or an app that terminates TLS itself. For a
sidecar-injected app port it reaches the app directly, and the sidecar's
certificate comes from the `kubectl.admin-certs` probe instead.
"""

from __future__ import annotations

import socket
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from doctor.live.context import ProbeContext
from doctor.live.registry import Permission, ProbeRegistry, Target
from doctor.model import Observation, ProbeStatus
from doctor.probes import openssl

PROBE_ID = "openssl.workload-tls"
LOOPBACK_NOTE = ("port-forward connects on the pod's loopback, which bypasses an Istio sidecar: "
                 "this is the TLS of the listener that owns the port, not of the sidecar's inbound mTLS")


def workload_tls(context: ProbeContext, target: Target) -> Observation:
    """Forward a local port to the pod's port and run s_client against it without a client certificate."""
    if not target.port:
        return _observation(target, ProbeStatus.UNAVAILABLE,
                            "the pod declares no container port, so there is no port to forward")

    local_port = _free_port()
    argv = context.kubectl("port-forward", f"pod/{target.pod}", "-n", target.namespace, "--address", "127.0.0.1",
                           f"{local_port}:{target.port}")
    with tempfile.TemporaryDirectory(prefix="mesh-doctor-port-forward-") as folder:
        log_path = Path(folder) / "port-forward.log"
        try:
            forward = context.runner.start(argv, name=f"port-forward {target.label()}", log_path=log_path)
        except FileNotFoundError as error:
            return _observation(target, ProbeStatus.UNAVAILABLE, str(error))
        try:
            ready, log = _wait_forwarding(forward, log_path, local_port, context.options.probe_timeout_s)
            if not ready:
                return _observation(target, ProbeStatus.FAILED,
                                    f"kubectl port-forward to port {target.port} did not start: "
                                    f"{log.strip()[-500:] or 'no output'}")
            result = openssl.s_client(local_port, tls_version="1.2", timeout=context.options.probe_timeout_s,
                                      runner=context.runner, target=target.label())
        finally:
            forward.stop()

    reason = "; ".join(part for part in (result.reason, LOOPBACK_NOTE) if part)
    return replace(result, probe_id=PROBE_ID, reason=reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_forwarding(forward, log_path: Path, local_port: int, timeout_s: float) -> tuple[bool, str]:
    """Wait until kubectl prints that it forwards the port; return (ready, log text)."""
    deadline = time.monotonic() + timeout_s
    expected = f"Forwarding from 127.0.0.1:{local_port}"
    log = ""
    while time.monotonic() < deadline:
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        if expected in log:
            return True, log
        if not forward.is_alive():
            return False, log
        time.sleep(0.1)
    return False, log + f"\n(no '{expected}' within {timeout_s:g} s)"


def _observation(target: Target, status: ProbeStatus, reason: str) -> Observation:
    return Observation(probe_id=PROBE_ID, argv=(), started_at=datetime.now(timezone.utc), duration_s=0.0,
                       exit_status=None, status=status, output="", reason=reason, target=target.label())


def register(registry: ProbeRegistry) -> None:
    registry.register(PROBE_ID, workload_tls,
                      "openssl s_client through kubectl port-forward: the chain, expiry and SAN the port presents, "
                      "and whether a client without a certificate is rejected",
                      scope="pod", programs=("kubectl", "openssl"),
                      permissions=(Permission("create", "pods", "portforward"),),
                      evidence_for=("tls-handshake-failure", "cert-expired", "mesh-root-ca-expired", "unknown-ca",
                                    "san-mismatch", "plaintext-against-tls"))
