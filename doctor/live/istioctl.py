"""Probes that run istioctl when it is on PATH; each reports `unavailable` with the install hint otherwise.

`proxy-status` prints JSON on istioctl 1.22 and later and a table before,
which the istioctl reader parses by its column header names. `proxy-config`
and `analyze` print JSON. istioctl reads the same KUBECONFIG as kubectl, and
`--context` is passed through.
"""

from __future__ import annotations

from doctor.live.context import ProbeContext
from doctor.live.registry import Permission, ProbeRegistry, Target
from doctor.model import Observation, ProbeStatus


def _istioctl(context: ProbeContext, *args: str) -> list[str]:
    argv = ["istioctl"]
    if context.options.context:
        argv += ["--context", context.options.context]
    return argv + list(args)


def proxy_status(context: ProbeContext, target: Target) -> Observation:
    """Ask istiod which proxies are SYNCED, STALE or NOT SENT, per xDS type.

    istioctl 1.22 and later print the CSDS status as JSON with `-o json`; an
    older istioctl rejects the flag, and the probe then reads the table.
    """
    timeout = context.options.probe_timeout_s
    structured = context.runner.run(_istioctl(context, "proxy-status", "-o", "json"),
                                    probe_id="istioctl.proxy-status", target=target.label(), timeout=timeout)
    if structured.status is not ProbeStatus.FAILED or "unknown shorthand flag" not in structured.reason:
        return structured
    return context.runner.run(_istioctl(context, "proxy-status"), probe_id="istioctl.proxy-status",
                              target=target.label(), timeout=timeout)


def proxy_config_secret(context: ProbeContext, target: Target) -> Observation:
    """Read the secrets (certificates and trust bundles) the pod's sidecar received over SDS."""
    argv = _istioctl(context, "proxy-config", "secret", f"{target.pod}.{target.namespace}", "-o", "json")
    return context.runner.run(argv, probe_id="istioctl.proxy-config-secret", target=target.label(),
                              timeout=context.options.probe_timeout_s)


def proxy_config_cluster(context: ProbeContext, target: Target) -> Observation:
    """Read the upstream clusters of the pod's sidecar, with TLS settings and circuit breakers."""
    argv = _istioctl(context, "proxy-config", "cluster", f"{target.pod}.{target.namespace}", "-o", "json")
    return context.runner.run(argv, probe_id="istioctl.proxy-config-cluster", target=target.label(),
                              timeout=context.options.probe_timeout_s)


def analyze(context: ProbeContext, target: Target) -> Observation:
    """Run Istio's configuration analyzers on the namespace."""
    argv = _istioctl(context, "analyze", "-n", target.namespace, "-o", "json")
    return context.runner.run(argv, probe_id="istioctl.analyze", target=target.label(),
                              timeout=context.options.probe_timeout_s)


def describe_pod(context: ProbeContext, target: Target) -> Observation:
    """Describe the policies, DestinationRules and VirtualServices that apply to the pod."""
    argv = _istioctl(context, "x", "describe", "pod", target.pod, "-n", target.namespace)
    return context.runner.run(argv, probe_id="istioctl.describe-pod", target=target.label(),
                              timeout=context.options.probe_timeout_s)


def register(registry: ProbeRegistry) -> None:
    registry.register("istioctl.proxy-status", proxy_status,
                      "istioctl proxy-status: xDS sync state of every proxy", scope="cluster",
                      programs=("istioctl",), permissions=(Permission("create", "pods", "portforward"),),
                      evidence_for=("proxy-config-not-synced", "stale-proxy-config", "http-503"))
    registry.register("istioctl.proxy-config-secret", proxy_config_secret,
                      "istioctl proxy-config secret -o json: the workload certificate and roots", scope="pod",
                      programs=("istioctl",), permissions=(Permission("create", "pods", "portforward"),),
                      evidence_for=("tls-handshake-failure", "sds-secret-not-supplied", "cert-expired",
                                    "mesh-root-ca-expired", "unknown-ca", "san-mismatch"))
    registry.register("istioctl.proxy-config-cluster", proxy_config_cluster,
                      "istioctl proxy-config cluster -o json: upstream clusters and their TLS", scope="pod",
                      programs=("istioctl",), permissions=(Permission("create", "pods", "portforward"),),
                      evidence_for=("http-503", "dr-tls-mode-conflict", "circuit-breaker-overflow",
                                    "jwks-cluster-without-tls"))
    registry.register("istioctl.analyze", analyze, "istioctl analyze -o json: configuration problems",
                      scope="namespace", programs=("istioctl",), permissions=(Permission("list", "pods"),))
    registry.register("istioctl.describe-pod", describe_pod,
                      "istioctl x describe pod: the Istio configuration that applies to the pod", scope="pod",
                      programs=("istioctl",), permissions=(Permission("get", "pods"),),
                      evidence_for=("http-503", "http-403", "dr-tls-mode-conflict", "rbac-no-allow-matched",
                                    "rbac-deny-matched"))
