"""Probes that run kubectl: the sidecar's logs and GET requests to its Envoy admin API.

The admin API is read with `kubectl exec POD -c istio-proxy -- pilot-agent
request GET PATH`. The runner classifies it as read-only only for GET
requests to read endpoints, and rejects any other exec before it runs.
Pod names and namespaces come from cluster data and reach kubectl as single
argv elements, never through a shell.
"""

from __future__ import annotations

from doctor.live.context import ProbeContext
from doctor.live.registry import Permission, ProbeRegistry, Target
from doctor.model import Observation

PROXY_CONTAINER = "istio-proxy"
# Admin paths read through pilot-agent, with the probe id and the ids each gathers evidence for.
ADMIN_PATHS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("stats", "kubectl.admin-stats", "Envoy's counters and gauges (connect failures, overflows, ejections, "
     "rate-limit and RBAC counters)", ()),
    ("clusters", "kubectl.admin-clusters", "Envoy's upstream hosts with health flags and per-host counters",
     ("http-503", "upstream-connect-failure", "no-healthy-upstream", "outlier-ejection", "circuit-breaker-overflow",
      "jwks-fetch-failed")),
    ("certs", "kubectl.admin-certs", "The certificates the sidecar holds: chain, expiry and SAN",
     ("tls-handshake-failure", "cert-expired", "mesh-root-ca-expired", "unknown-ca", "san-mismatch",
      "sds-secret-not-supplied", "rbac-principal-mismatch")),
    ("config_dump", "kubectl.admin-config-dump", "Envoy's full configuration: listeners, filters (RBAC, "
     "jwt_authn, local rate limit), clusters and secrets", ()),
)
# A sidecar's config_dump can reach tens of megabytes in a large mesh.
CONFIG_DUMP_CAP_BYTES = 128 * 1024 * 1024


def proxy_logs(context: ProbeContext, target: Target) -> Observation:
    """Read the istio-proxy container's log since `--since` (access log and Envoy's own lines)."""
    argv = context.kubectl("logs", target.pod, "-n", target.namespace, "-c", target.container or PROXY_CONTAINER,
                           f"--since={context.options.log_since}")
    return context.runner.run(argv, probe_id="kubectl.proxy-logs", target=target.label(),
                              timeout=context.options.probe_timeout_s)


def proxy_logs_previous(context: ProbeContext, target: Target) -> Observation:
    """Read the log of the previous istio-proxy container, the one that was killed or crashed."""
    argv = context.kubectl("logs", target.pod, "-n", target.namespace, "-c", target.container or PROXY_CONTAINER,
                           "--previous")
    return context.runner.run(argv, probe_id="kubectl.proxy-logs-previous", target=target.label(),
                              timeout=context.options.probe_timeout_s)


def _admin_getter(path: str, probe_id: str):
    def admin_get(context: ProbeContext, target: Target) -> Observation:
        argv = context.kubectl("exec", target.pod, "-n", target.namespace, "-c", target.container or PROXY_CONTAINER,
                               "--", "pilot-agent", "request", "GET", path)
        cap = CONFIG_DUMP_CAP_BYTES if path == "config_dump" else None
        return context.runner.run(argv, probe_id=probe_id, target=target.label(),
                                  timeout=context.options.probe_timeout_s, output_cap_bytes=cap)

    admin_get.__doc__ = f"GET /{path} from the sidecar's Envoy admin API through pilot-agent."
    return admin_get


def register(registry: ProbeRegistry) -> None:
    registry.register("kubectl.proxy-logs", proxy_logs,
                      "The istio-proxy log since --since: access-log lines and Envoy's warnings",
                      scope="pod", programs=("kubectl",), permissions=(Permission("get", "pods", "log"),))
    registry.register("kubectl.proxy-logs-previous", proxy_logs_previous,
                      "The log of the istio-proxy container that ran before the last restart",
                      scope="pod", programs=("kubectl",), permissions=(Permission("get", "pods", "log"),),
                      evidence_for=("container-exit-137", "sidecar-oom-killed", "proxy-memory-limit-too-low",
                                    "upstream-connect-failure"))
    for path, probe_id, summary, evidence_for in ADMIN_PATHS:
        registry.register(probe_id, _admin_getter(path, probe_id), summary, scope="pod", programs=("kubectl",),
                          permissions=(Permission("create", "pods", "exec"),), evidence_for=evidence_for,
                          needs_running_proxy=True)
