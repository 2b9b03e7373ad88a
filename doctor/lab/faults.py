"""The faults the mesh lab injects, and how one is reproduced and captured.

Each `Fault` names the lab settings that break the mesh (a certificate, a
policy, a filter) and the traffic that shows the breakage. It also records
the correct diagnosis: the cause Mesh Doctor must rank first, the chain from
the symptom to that cause, and a text the cited evidence must contain.
`reproduce` applies one fault to a running `MeshLab`, sends its traffic with
a bounded tcpdump on the lab's ports, and returns the capture.

Faults the machine cannot reproduce (network namespaces without root)
raise `FaultUnavailable` with the reason; nothing is faked.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Callable

from doctor.lab import mtu, oom
from doctor.lab.netns import NamespaceUnavailable
from doctor.lab.mesh import NAMESPACE, Capture, LabError, LabSettings, MeshLab
from doctor.probes import tcpdump
from doctor.runner import Runner

logger = logging.getLogger(__name__)

REQUESTS = 3
CAPTURE_MAX_PACKETS = 2000
CAPTURE_STOP_GRACE_S = 2.0
HEALTHY = LabSettings()


class FaultUnavailable(LabError):
    """Raised when this machine cannot reproduce a fault, with the reason in the message."""


@dataclass(frozen=True)
class Fault:
    """One injectable fault and the correct diagnosis of it."""

    name: str
    title: str
    settings: LabSettings
    drive: Callable[[MeshLab], None]
    cause: str  # the cause the diagnosis must rank first
    chain: tuple[str, ...] = ()  # the top finding's chain, from the symptom down to `cause`
    evidence: str = ""  # a text the top finding's supporting evidence must contain
    group: str = ""  # the numbered fault of the lab's list this one reproduces
    needs_root: bool = False
    # A fault that needs its own topology runs apart from the lab's mesh and returns its capture.
    standalone: Callable[[Path, Runner, str, list[int]], Capture] | None = None


def _requests(path: str = "/get", count: int = REQUESTS, token: Callable[[MeshLab], str | None] | None = None,
              direct: bool = False) -> Callable[[MeshLab], None]:
    def drive(lab: MeshLab) -> None:
        value = token(lab) if token is not None else lab.valid_token()
        for _ in range(count):
            lab.request(path, token=value, direct=direct)
    return drive


def _no_token(lab: MeshLab) -> None:
    for _ in range(REQUESTS):
        lab.request("/get")


def _healthy_then(fault_step: Callable[[MeshLab], None]) -> Callable[[MeshLab], None]:
    def drive(lab: MeshLab) -> None:
        token = lab.valid_token()
        for _ in range(REQUESTS):
            lab.request("/get", token=token)
        fault_step(lab)
    return drive


def _app_down(lab: MeshLab) -> None:
    lab.stop_app()
    token = lab.valid_token()
    for _ in range(REQUESTS):
        lab.request("/get", token=token)


def _outlier_ejection(lab: MeshLab) -> None:
    token = lab.valid_token()
    for _ in range(2):
        lab.request("/status/503", token=token)
    # Outlier detection runs every second; after that every host is ejected.
    time.sleep(1.5)
    for _ in range(REQUESTS):
        lab.request("/get", token=token)


def _circuit_breaker(lab: MeshLab) -> None:
    token = lab.valid_token()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(lab.request, "/delay/1", token) for _ in range(8)]
        for future in futures:
            future.result()


def _rate_limit(lab: MeshLab) -> None:
    token = lab.valid_token()
    for _ in range(2 * REQUESTS):
        lab.request("/get", token=token)


def _rate_limit_shadow(lab: MeshLab) -> None:
    token = lab.valid_token()
    for _ in range(REQUESTS):
        lab.request("/get", token=token)
    # The application itself throttles: these 429s pass the local limit, which only counts.
    for _ in range(REQUESTS):
        lab.request("/status/429", token=token)


def _no_traffic(lab: MeshLab) -> None:
    """Send nothing through the lab's mesh: the fault's own topology carries its traffic."""


def _mtu_blackhole(scratch: Path, runner: Runner, envoy: str, pids: list[int]) -> Capture:
    try:
        return mtu.reproduce(scratch / "mtu", runner, envoy, pids)
    except NamespaceUnavailable as error:
        raise FaultUnavailable(f"network namespaces cannot be made here: {error}") from error


def _oom_kill(lab: MeshLab) -> None:
    oom.kill_server_sidecar(lab)
    token = lab.valid_token()
    for _ in range(REQUESTS):
        lab.request("/get", token=token)


_FAULTS: tuple[Fault, ...] = (
    Fault("cert-expired", "The server sidecar's certificate expired",
          replace(HEALTHY, server_certificate="expired"), _requests(), "cert-expired", evidence="CERTIFICATE_VERIFY_FAILED", group="1",
          chain=('http-503', 'upstream-connect-failure', 'cert-expired')),
    Fault("unknown-ca-tls13", "The client's certificate comes from another CA (TLS 1.3)",
          replace(HEALTHY, client_certificate_ca="foreign"), _requests(), "unknown-ca",
          evidence="UNKNOWN_CA", group="2",
          chain=('tls-handshake-failure', 'unknown-ca')),
    Fault("unknown-ca-tls12", "The client's certificate comes from another CA (TLS 1.2)",
          replace(HEALTHY, client_certificate_ca="foreign", client_tls_max_version="TLSv1_2"),
          _requests(), "unknown-ca", evidence="UNKNOWN_CA", group="2",
          chain=('tls-handshake-failure', 'unknown-ca')),
    Fault("plaintext-to-strict", "A client without a sidecar sends plaintext to the STRICT port",
          HEALTHY, _requests(direct=True), "plaintext-to-strict",
          evidence="filter_chain_not_found", group="3",
          chain=('http-503', 'upstream-connect-failure', 'plaintext-to-strict')),
    Fault("san-mismatch", "The server's certificate carries another service account's identity",
          replace(HEALTHY, server_certificate="wrong-san"), _requests(), "san-mismatch",
          evidence="SAN", group="4",
          chain=('tls-handshake-failure', 'san-mismatch')),
    Fault("rbac-principal", "The client runs as a service account the ALLOW policy does not name",
          replace(HEALTHY, client_service_account="default"), _requests(), "rbac-principal-mismatch", evidence="rbac_access_denied_matched_policy[none]", group="5",
          chain=('http-403', 'rbac-no-allow-matched', 'rbac-principal-mismatch')),
    Fault("rbac-operation", "The ALLOW policy permits only GET /headers; the client calls /get",
          replace(HEALTHY, allowed_paths=("/headers",), allowed_methods=("GET",)), _requests(),
          "rbac-no-allow-matched", evidence="rbac_access_denied_matched_policy[none]", group="6",
          chain=('http-403', 'rbac-no-allow-matched')),
    Fault("jwt-expired", "The client's JWT expired 30 minutes ago",
          HEALTHY, _requests(token=MeshLab.expired_token), "jwt-expired", evidence="Jwt_is_expired", group="7",
          chain=('http-401', 'jwt-expired')),
    Fault("jwt-not-yet-valid", "The client's JWT is valid only from 30 minutes from now",
          HEALTHY, _requests(token=MeshLab.future_token), "jwt-not-yet-valid",
          evidence="Jwt_not_yet_valid", group="7",
          chain=('http-401', 'jwt-not-yet-valid')),
    Fault("jwt-wrong-issuer", "The client's JWT comes from an issuer the RequestAuthentication does not name",
          HEALTHY, _requests(token=lambda lab: lab.foreign_token(issuer="https://accounts.mesh-lab.test")),
          "jwt-issuer-not-configured", evidence="Jwt_issuer_is_not_configured", group="7",
          chain=('http-401', 'jwt-issuer-not-configured')),
    Fault("jwt-unknown-kid", "The client's JWT is signed with a key the JWKS does not publish",
          HEALTHY, _requests(token=lambda lab: lab.foreign_token(key_id="lab-signing-key-2")),
          "jwt-kid-not-in-jwks", evidence="Jwks_doesn't_have_key_to_match_kid_or_alg", group="7",
          chain=('http-401', 'jwt-kid-not-in-jwks')),
    Fault("jwt-wrong-audience", "The client's JWT is for another audience",
          replace(HEALTHY, jwt_audiences=(f"httpbin.{NAMESPACE}.svc.cluster.local",)),
          _requests(token=lambda lab: lab.audience_token(f"payments.{NAMESPACE}.svc.cluster.local")),
          "jwt-audience-mismatch", evidence="Audiences_in_Jwt_are_not_allowed", group="7",
          chain=('http-403', 'jwt-audience-mismatch')),
    Fault("jwt-missing", "The route requires a JWT and the client sends none",
          replace(HEALTHY, jwt_allow_missing=False), _no_token, "jwt-missing",
          evidence="Jwt_is_missing", group="7",
          chain=('http-401', 'jwt-missing')),
    Fault("jwks-unreachable", "The JWKS server refuses connections, so jwt_authn cannot fetch the keys",
          replace(HEALTHY, jwks_unreachable=True), _requests(), "jwks-fetch-failed",
          evidence="Jwks_remote_fetch_is_failed", group="8",
          chain=('http-401', 'jwks-fetch-failed')),
    Fault("clock-drift", "The token issuer's clock runs 10 minutes ahead of the proxies'",
          HEALTHY, _requests(token=lambda lab: lab.skewed_token(timedelta(minutes=10))), "clock-drift",
          evidence="Authorization: Bearer", group="9",
          chain=('http-401', 'jwt-not-yet-valid', 'clock-drift')),
    Fault("rate-limit", "The server's local rate limit allows 3 requests a minute",
          replace(HEALTHY, rate_limit_tokens=REQUESTS), _rate_limit, "local-rate-limit-exhausted",
          evidence="local_rate_limited", group="10",
          chain=('http-429', 'local-rate-limit-exhausted')),
    Fault("rate-limit-shadow", "The local rate limit is in shadow mode and the app answers 429 itself",
          replace(HEALTHY, rate_limit_tokens=2, rate_limit_enforced=False), _rate_limit_shadow,
          "local-rate-limit-shadow-mode", evidence="via_upstream", group="10",
          chain=('http-429', 'local-rate-limit-shadow-mode')),
    Fault("circuit-breaker", "The DestinationRule's connection pool allows one request at a time",
          replace(HEALTHY, circuit_breaker=True), _circuit_breaker, "circuit-breaker-overflow",
          evidence=" UO ", group="11",
          chain=('http-503', 'circuit-breaker-overflow')),
    Fault("upstream-app-down", "The upstream application stops after three good requests",
          HEALTHY, _healthy_then(_app_down), "upstream-app-down", evidence="Connection_refused", group="12",
          chain=('http-503', 'upstream-connect-failure', 'upstream-app-down')),
    Fault("outlier-ejection", "The app answers 503, and outlier detection ejects its only host",
          replace(HEALTHY, outlier_detection=True), _outlier_ejection, "outlier-ejection",
          evidence="outlier_detection.ejections_active", group="12",
          chain=("http-503", "no-healthy-upstream", "outlier-ejection")),
    Fault("sidecar-oom", "The server sidecar is OOM-killed against its memory limit",
          HEALTHY, _healthy_then(_oom_kill), "proxy-memory-limit-too-low", evidence="OOMKilled", group="13",
          chain=('http-503', 'upstream-connect-failure', 'sidecar-oom-killed', 'proxy-memory-limit-too-low')),
    Fault("mtu-blackhole", "The server's pod network sends 9000-byte packets that the client's path drops",
          HEALTHY, _no_traffic, "mtu-blackhole", evidence="mtu 9000", group="14", needs_root=True,
          standalone=_mtu_blackhole, chain=("tail-latency", "mtu-blackhole")),
    Fault("dr-disable-to-strict", "A DestinationRule with tls.mode DISABLE sends plaintext to the STRICT server",
          replace(HEALTHY, destination_rule_tls="DISABLE"), _requests(), "dr-tls-mode-conflict",
          evidence="DISABLE", group="15",
          chain=('http-503', 'upstream-connect-failure', 'plaintext-to-strict', 'dr-tls-mode-conflict')),
    Fault("dr-tls-to-plaintext", "The client originates Istio mTLS to a server whose mTLS is DISABLEd",
          replace(HEALTHY, destination_rule_tls="ISTIO_MUTUAL", peer_authentication="DISABLE"), _requests(),
          "plaintext-against-tls", evidence="WRONG_VERSION_NUMBER", group="15",
          chain=('tls-handshake-failure', 'plaintext-against-tls')),
)

FAULTS: dict[str, Fault] = {fault.name: fault for fault in _FAULTS}


def fault_named(name: str) -> Fault:
    """Return the fault called `name`; raises KeyError naming the known faults."""
    try:
        return FAULTS[name]
    except KeyError:
        raise KeyError(f"unknown fault {name!r}; `mesh-doctor lab list` shows the faults: "
                       + ", ".join(FAULTS)) from None


def reproduce(lab: MeshLab, fault: Fault, scratch: Path) -> Capture:
    """Inject `fault` into the running `lab`, send its traffic under tcpdump, and capture the evidence."""
    inject(lab, fault)
    return capture(lab, fault, scratch)


def inject(lab: MeshLab, fault: Fault) -> None:
    """Restart the lab's sidecars with the settings of `fault`; its traffic comes with `capture`."""
    if fault.needs_root and os.geteuid() != 0:
        raise FaultUnavailable(f"fault {fault.name} needs root (network namespaces); run the lab as root")
    if fault.standalone is None:
        lab.apply(fault.settings)
    else:
        lab.notes = []


def capture(lab: MeshLab, fault: Fault | None, scratch: Path) -> Capture:
    """Send the traffic of `fault` (healthy requests for None) under a bounded tcpdump, then capture the evidence."""
    if fault is not None and fault.standalone is not None:
        return fault.standalone(scratch, lab.runner, lab.envoy, lab.helper_pids)
    drive = fault.drive if fault is not None else _requests()
    pcap = scratch / "traffic.pcap"
    log_path = scratch / "tcpdump.log"
    pcap.unlink(missing_ok=True)
    log_path.unlink(missing_ok=True)
    capture_process = None
    try:
        capture_process = tcpdump.start_capture(pcap, lab.ports, log_path=log_path,
                                                max_packets=CAPTURE_MAX_PACKETS, runner=lab.runner)
        lab.helper_pids.append(capture_process.pid)
        _wait_for_capture_start(log_path, capture_process)
    except FileNotFoundError as error:
        logger.warning("no packet capture: %s", error)

    try:
        drive(lab)
        lab.wait_for_quiet_logs()
    finally:
        if capture_process is not None:
            capture_process.stop(grace_s=CAPTURE_STOP_GRACE_S)
    return lab.capture(packets=pcap if pcap.exists() else None)


def _wait_for_capture_start(log_path: Path, process, timeout: float = 3.0) -> None:
    """Wait until tcpdump prints that it listens, so the first packets are not lost."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.is_alive():
        if log_path.exists() and "listening on" in log_path.read_text(errors="replace"):
            return
        time.sleep(0.05)
