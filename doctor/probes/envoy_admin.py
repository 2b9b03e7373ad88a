"""GET-only probes of an Envoy admin endpoint on the loopback interface.

Envoy's admin API listens on 127.0.0.1:15000 inside an Istio pod. These
probes read it with curl through the runner, either directly (the mesh lab,
or a `kubectl port-forward` to the pod) or with
`kubectl exec POD -c istio-proxy -- pilot-agent request GET PATH`.
Only read endpoints are allowed; the endpoints that change Envoy (such as
/quitquitquit, /logging, /reset_counters) are rejected before anything runs.
"""

from __future__ import annotations

import ipaddress
import logging

from doctor.model import Observation
from doctor.runner import Runner

logger = logging.getLogger(__name__)

# Admin paths these probes may read, with the probe id each gets.
ENDPOINTS = {
    "/stats": "envoy-admin.stats",
    "/stats/prometheus": "envoy-admin.stats-prometheus",
    "/certs": "envoy-admin.certs",
    "/clusters": "envoy-admin.clusters",
    "/config_dump": "envoy-admin.config-dump",
    "/server_info": "envoy-admin.server-info",
    "/listeners": "envoy-admin.listeners",
    "/ready": "envoy-admin.ready",
}
DEFAULT_TIMEOUT_S = 10.0


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    path, _, query = endpoint.partition("?")
    path = "/" + path.lstrip("/")
    if path not in ENDPOINTS:
        allowed = ", ".join(sorted(ENDPOINTS))
        raise ValueError(f"Envoy admin endpoint {path!r} is not a read-only endpoint these probes use; use one of {allowed}")
    return path, query


def check_loopback(host: str) -> None:
    """Raise ValueError unless `host` is a loopback address."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"{host!r} is not a loopback address; reach the admin endpoint through "
            "`kubectl port-forward POD 15000` and probe 127.0.0.1")


def admin_url(host: str, port: int, endpoint: str) -> str:
    """Return the URL of a read-only admin `endpoint` (a path with an optional query)."""
    check_loopback(host)
    path, query = _split_endpoint(endpoint)
    netloc = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{netloc}:{int(port)}{path}" + (f"?{query}" if query else "")


def fetch(
    endpoint: str,
    *,
    port: int,
    host: str = "127.0.0.1",
    target: str = "",
    timeout: float = DEFAULT_TIMEOUT_S,
    runner: Runner | None = None,
    output_cap_bytes: int | None = None,
) -> Observation:
    """GET one admin `endpoint` (such as "/stats" or "/config_dump?include_eds") with curl.

    Raises ValueError for an endpoint outside `ENDPOINTS` or a host that is
    not loopback. An HTTP error status makes the observation `failed`.
    """
    url = admin_url(host, port, endpoint)
    path, _ = _split_endpoint(endpoint)
    argv = [
        "curl", "--silent", "--show-error", "--fail-with-body",
        "--noproxy", "*", "--max-time", f"{timeout:g}", url,
    ]
    runner = runner or Runner.from_environment()
    # The runner's timeout is a backstop a little past curl's own --max-time.
    return runner.run(argv, probe_id=ENDPOINTS[path], timeout=timeout + 5, target=target or f"{host}:{port}",
                      output_cap_bytes=output_cap_bytes)


def fetch_via_pilot_agent(
    endpoint: str,
    *,
    pod: str,
    namespace: str,
    container: str = "istio-proxy",
    context: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    runner: Runner | None = None,
) -> Observation:
    """GET one admin `endpoint` inside a pod with `pilot-agent request GET`, through kubectl exec."""
    path, query = _split_endpoint(endpoint)
    argv = ["kubectl"]
    if context:
        argv += ["--context", context]
    argv += [
        "exec", pod, "-n", namespace, "-c", container, f"--request-timeout={timeout:g}s",
        "--", "pilot-agent", "request", "GET", path.lstrip("/") + (f"?{query}" if query else ""),
    ]
    runner = runner or Runner.from_environment()
    return runner.run(argv, probe_id=ENDPOINTS[path], timeout=timeout + 5, target=f"{namespace}/{pod}")
