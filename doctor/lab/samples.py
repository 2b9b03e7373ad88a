"""Sample incident bundles recorded from the real Envoy mesh lab.

    python -m doctor.lab.samples OUTDIR [--only NAME]

writes one bundle folder per incident under OUTDIR:

- 401-jwt-expired: three requests with a valid JWT get 200, then three with
  a token that expired 30 minutes earlier get 401 `Jwt is expired`;
- 403-rbac-principal: the client pod runs as service account `default`, so
  its SPIFFE principal is not the `sleep` principal the ALLOW policy names,
  and every request gets 403 `rbac_access_denied_matched_policy[none]`;
- 503-upstream-down: three requests get 200, then the upstream application
  stops and three more get 503: the server sidecar logs UF with
  `delayed_connect_error:_Connection_refused` for each attempt and the client
  sidecar logs URX after Istio's two retries.

Each bundle contains the client's curl runs, /stats, /certs, /clusters and
/config_dump of both sidecars, an openssl s_client handshake with the
server sidecar, both access logs, the Istio policies and the pods. Request counts are fixed and requests run one after another, so a
re-run gives the same kinds of lines; ports, ids and times differ.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from doctor.bundle import BundleError, read_manifest, remove_bundle, write_bundle
from doctor.lab.mesh import CLIENT_APP, NAMESPACE, LabError, LabSettings, MeshLab

logger = logging.getLogger(__name__)

REQUESTS_PER_PHASE = 3
# Istio's default retry policy makes two retries, so the server sidecar
# logs three attempts for each request the client sends while the app is down.
ATTEMPTS_PER_FAILED_REQUEST = 3


@dataclass(frozen=True)
class Incident:
    """One sample incident: how to set the lab up and what traffic to send."""

    name: str
    description: str
    settings: LabSettings
    drive: Callable[[MeshLab], tuple[int, int]]  # returns (client, server) access log line counts


def _drive_jwt_expired(lab: MeshLab) -> tuple[int, int]:
    token = lab.valid_token()
    for _ in range(REQUESTS_PER_PHASE):
        lab.request("/get", token=token)
    expired = lab.expired_token()
    for _ in range(REQUESTS_PER_PHASE):
        lab.request("/get", token=expired)
    return 2 * REQUESTS_PER_PHASE, 2 * REQUESTS_PER_PHASE


def _drive_rbac_principal(lab: MeshLab) -> tuple[int, int]:
    token = lab.valid_token()
    for _ in range(REQUESTS_PER_PHASE):
        lab.request("/get", token=token)
    return REQUESTS_PER_PHASE, REQUESTS_PER_PHASE


def _drive_upstream_down(lab: MeshLab) -> tuple[int, int]:
    token = lab.valid_token()
    for _ in range(REQUESTS_PER_PHASE):
        lab.request("/get", token=token)
    lab.stop_app()
    for _ in range(REQUESTS_PER_PHASE):
        lab.request("/get", token=token)
    return 2 * REQUESTS_PER_PHASE, REQUESTS_PER_PHASE * (1 + ATTEMPTS_PER_FAILED_REQUEST)


INCIDENTS = {
    incident.name: incident
    for incident in (
        Incident(
            name="401-jwt-expired",
            description=("Requests from sleep to httpbin carry a JWT that expired 30 minutes earlier; "
                         "the httpbin sidecar's jwt_authn filter answers 401 'Jwt is expired' after "
                         "earlier requests with a valid token got 200."),
            settings=LabSettings(),
            drive=_drive_jwt_expired,
        ),
        Incident(
            name="403-rbac-principal",
            description=(f"The sleep pod runs as service account 'default', so its SPIFFE principal is "
                         f"spiffe://cluster.local/ns/{NAMESPACE}/sa/default, while the httpbin ALLOW "
                         f"AuthorizationPolicy names cluster.local/ns/{NAMESPACE}/sa/{CLIENT_APP}; "
                         "every request gets 403 from the httpbin sidecar's RBAC filter."),
            settings=LabSettings(client_service_account="default"),
            drive=_drive_rbac_principal,
        ),
        Incident(
            name="503-upstream-down",
            description=("The httpbin application stops after three successful requests; the httpbin "
                         "sidecar's connections to it are refused (503 UF) and the sleep sidecar gives "
                         "up after two retries (503 URX)."),
            settings=LabSettings(),
            drive=_drive_upstream_down,
        ),
    )
}


@dataclass(frozen=True)
class Recording:
    """A recorded incident: its bundle, and the ids of the processes the lab ran (all stopped by now)."""

    bundle: Path
    pids: tuple[int, ...]
    ports: tuple[int, ...]


def record_incident(name: str, bundle_dir: Path, workdir: Path, *, envoy: str | None = None) -> Recording:
    """Run the lab for incident `name` in `workdir` and write its bundle to `bundle_dir`.

    Raises KeyError for an unknown name and LabError when the lab fails.
    """
    incident = INCIDENTS[name]
    with MeshLab(workdir, incident.settings, envoy=envoy) as lab:
        client_lines, server_lines = incident.drive(lab)
        lab.wait_for_access_logs(client_lines, server_lines)
        capture = lab.capture()
        pids = tuple(lab.pids)
        ports = tuple(lab.ports)
    bundle = write_bundle(bundle_dir, capture.observations, capture.files, description=incident.description)
    return Recording(bundle=bundle, pids=pids, ports=ports)


def _replace_bundle(path: Path) -> None:
    if not path.exists():
        return
    try:
        read_manifest(path)
    except BundleError:
        if any(path.iterdir()):
            raise BundleError(f"{path} exists and is not a bundle; move it away before recording samples") from None
        path.rmdir()
        return
    remove_bundle(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m doctor.lab.samples",
        description="Record the sample incident bundles from a real Envoy mesh on 127.0.0.1.")
    parser.add_argument("outdir", type=Path, help="folder to write one bundle folder per incident into")
    parser.add_argument("--only", choices=sorted(INCIDENTS), action="append",
                        help="record only this incident (repeat for several)")
    parser.add_argument("--envoy", help="path of the envoy binary (default: envoy on PATH or next to Python)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("sh").setLevel(logging.WARNING)

    names = args.only or sorted(INCIDENTS)
    args.outdir.mkdir(parents=True, exist_ok=True)
    for name in names:
        bundle_dir = args.outdir / name
        try:
            _replace_bundle(bundle_dir)
            with tempfile.TemporaryDirectory(prefix=f"mesh-lab-{name}-") as workdir:
                record_incident(name, bundle_dir, Path(workdir), envoy=args.envoy)
        except (LabError, BundleError) as error:
            print(f"error: {name}: {error}", file=sys.stderr)
            return 1
        print(f"wrote {bundle_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
