"""The registry of live probes: what each probe reads, what it needs and which causes it serves.

A probe is a documented unit registered explicitly by `register(registry)`
in its module. Its `ProbeSpec` lists the programs that must be on PATH and
the RBAC permissions it uses, which `kubectl auth can-i` checks before it
runs. It also names its scope (the cluster, one namespace or one pod) and
the symptom and cause ids of the rule graph it gathers evidence for. The planner uses those
ids to fetch only what the candidate causes of the engineer's symptom need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal

from doctor.model import Observation

if TYPE_CHECKING:
    from doctor.live.context import ProbeContext

Scope = Literal["cluster", "namespace", "pod"]


@dataclass(frozen=True)
class Permission:
    """One RBAC permission: verb, resource, optional subresource and API group."""

    verb: str
    resource: str
    subresource: str = ""
    group: str = ""

    def can_i_arguments(self) -> list[str]:
        """Return the arguments of `kubectl auth can-i` for this permission.

        The subresource goes in `--subresource`, because can-i reads
        `pods/log` as the pod named "log".
        """
        name = f"{self.resource}.{self.group}" if self.group else self.resource
        arguments = [self.verb, name]
        if self.subresource:
            arguments.append(f"--subresource={self.subresource}")
        return arguments

    def __str__(self) -> str:
        name = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{self.verb} {name}/{self.subresource}" if self.subresource else f"{self.verb} {name}"


@dataclass(frozen=True)
class Target:
    """The namespace one probe run reads, and the pod and container for pod probes."""

    namespace: str = ""
    pod: str = ""
    container: str = ""
    # The app container next to the sidecar, for probes that join its network namespace.
    app_container: str = ""
    # The app container's first declared port, for probes that connect to it.
    port: int = 0
    # The sidecar's state from the pod status: "running", or "waiting: REASON" and the like.
    proxy_state: str = ""

    def label(self) -> str:
        parts = [part for part in (self.namespace, self.pod) if part]
        return "/".join(parts) or "cluster"


ProbeFunction = Callable[["ProbeContext", Target], Observation]


@dataclass(frozen=True)
class ProbeSpec:
    """A registered probe: its id, summary, function, prerequisites and the ids it gathers evidence for.

    An empty `evidence_for` means the probe serves every symptom (pods and
    events, access logs). `intrusive` probes change the cluster (a debug
    container) and run only after the engineer confirms.
    """

    id: str
    summary: str
    function: ProbeFunction
    scope: Scope
    programs: tuple[str, ...] = ()
    permissions: tuple[Permission, ...] = ()
    evidence_for: tuple[str, ...] = ()
    intrusive: bool = False
    # Seconds the probe may take when it needs more than the per-probe timeout (a capture).
    timeout_s: float | None = None
    # The probe execs into the sidecar, which must be running.
    needs_running_proxy: bool = False


@dataclass
class ProbeRegistry:
    """Probes by id, in registration order."""

    _specs: dict[str, ProbeSpec] = field(default_factory=dict)

    def register(self, probe_id: str, function: ProbeFunction, summary: str, *, scope: Scope,
                 programs: tuple[str, ...] = (), permissions: tuple[Permission, ...] = (),
                 evidence_for: tuple[str, ...] = (), intrusive: bool = False,
                 timeout_s: float | None = None, needs_running_proxy: bool = False) -> None:
        """Add a probe. Raises ValueError for a duplicate id or a missing summary."""
        if probe_id in self._specs:
            raise ValueError(f"probe {probe_id!r} is registered twice")
        if not summary.strip():
            raise ValueError(f"probe {probe_id!r}: missing summary; describe what the probe reads")
        self._specs[probe_id] = ProbeSpec(probe_id, summary, function, scope, tuple(programs),
                                          tuple(permissions), tuple(evidence_for), intrusive, timeout_s,
                                          needs_running_proxy)

    def get(self, probe_id: str) -> ProbeSpec | None:
        return self._specs.get(probe_id)

    def specs(self) -> list[ProbeSpec]:
        return list(self._specs.values())

    def __contains__(self, probe_id: str) -> bool:
        return probe_id in self._specs


def default_probes() -> ProbeRegistry:
    """Build the registry of every shipped live probe."""
    from doctor.live import capture, clock, istioctl, kubeapi, kubectl, tls

    registry = ProbeRegistry()
    for module in (kubeapi, kubectl, istioctl, tls, clock, capture):
        module.register(registry)
    return registry


def probes_markdown(registry: ProbeRegistry) -> str:
    """Render the probe reference table of docs/live.md."""
    rows = ["| probe | scope | needs | RBAC | serves | reads |", "| --- | --- | --- | --- | --- | --- |"]
    for spec in registry.specs():
        rbac = ", ".join(str(permission) for permission in spec.permissions) or "-"
        serves = ", ".join(spec.evidence_for) or "every symptom"
        needs = ", ".join(spec.programs) or "kubernetes client"
        summary = spec.summary + (" **(intrusive)**" if spec.intrusive else "")
        rows.append(f"| `{spec.id}` | {spec.scope} | {needs} | {rbac} | {serves} | {summary} |")
    return "\n".join(rows) + "\n"
