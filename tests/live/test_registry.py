"""The live probe registry: every probe is documented, its ids exist in the rule graph, and its commands only read."""

from __future__ import annotations

import inspect
from datetime import datetime, timezone

import pytest

from doctor.live.context import LiveOptions, ProbeContext
from doctor.live.plan import SYMPTOM_ALIASES, candidate_ids, resolve_symptom
from doctor.live.registry import Permission, ProbeRegistry, Target, default_probes
from doctor.model import Observation, ProbeStatus
from doctor.runner import is_mutating


def test_probes_documented_and_linked(engine):
    rule_ids = set(engine.rulebook.symptoms) | set(engine.rulebook.causes)

    for spec in default_probes().specs():
        assert spec.summary.strip(), spec.id
        assert inspect.getdoc(spec.function), f"{spec.id} has no docstring"
        unknown = set(spec.evidence_for) - rule_ids
        assert not unknown, f"{spec.id} names ids the rules do not define: {sorted(unknown)}"


def test_every_symptom_gets_probes(engine):
    registry = default_probes()

    for symptom_id in engine.rulebook.symptoms:
        relevant = candidate_ids(engine.rulebook, symptom_id)
        targeted = [spec.id for spec in registry.specs() if set(spec.evidence_for) & relevant]
        assert targeted, f"no probe gathers evidence for {symptom_id} or its causes"


def test_symptom_aliases_resolve(engine):
    for alias, symptom_id in SYMPTOM_ALIASES.items():
        assert resolve_symptom(alias, engine.rulebook) == symptom_id
    assert resolve_symptom("http-503", engine.rulebook) == "http-503"


def test_duplicate_probe_rejected():
    registry = ProbeRegistry()
    registry.register("kube.pods", lambda context, target: None, "Pods", scope="namespace")

    with pytest.raises(ValueError, match="registered twice"):
        registry.register("kube.pods", lambda context, target: None, "Pods", scope="namespace")


def test_can_i_uses_subresource_flag():
    assert Permission("get", "pods", "log").can_i_arguments() == ["get", "pods", "--subresource=log"]
    assert Permission("list", "peerauthentications", group="security.istio.io").can_i_arguments() == \
        ["list", "peerauthentications.security.istio.io"]


def test_probe_commands_read_only(tmp_path):
    """Every kubectl and istioctl argv a read-only probe builds is classified read-only by the runner."""
    from doctor.live import istioctl, kubectl

    context = ProbeContext.build(LiveOptions(kubeconfig=str(tmp_path / "none"), context="prod"),
                                 search_path=[str(tmp_path)])
    captured: list[list[str]] = []

    class Recorder:
        def run(self, argv, **kwargs):
            captured.append(list(argv))
            assert not kwargs.get("allow_mutation"), argv
            return Observation(probe_id=kwargs["probe_id"], argv=tuple(argv), started_at=datetime.now(timezone.utc),
                               duration_s=0.0, exit_status=0, status=ProbeStatus.OK, output="")

    context.runner = Recorder()  # type: ignore[assignment]
    target = Target(namespace="shop", pod="checkout-1", container="istio-proxy", app_container="checkout")
    for module in (kubectl, istioctl):
        registry = ProbeRegistry()
        module.register(registry)
        for spec in registry.specs():
            spec.function(context, target)

    assert len(captured) == 11
    for argv in captured:
        assert not is_mutating(argv), argv
        assert "--context" in argv
        assert argv[argv.index("--context") + 1] == "prod"


def test_docs_list_every_probe():
    from pathlib import Path

    from doctor.live.registry import probes_markdown

    docs = (Path(__file__).resolve().parents[2] / "docs" / "live.md").read_text()

    assert probes_markdown(default_probes()) in docs, "regenerate the table in docs/live.md"


def test_proxy_status_falls_back_to_table(tmp_path):
    """An istioctl older than 1.22 rejects -o; the probe then reads the table."""
    from doctor.live import istioctl

    context = ProbeContext.build(LiveOptions(kubeconfig=str(tmp_path / "none")), search_path=[str(tmp_path)])
    calls: list[list[str]] = []

    class OldIstioctl:
        def run(self, argv, **kwargs):
            calls.append(list(argv))
            rejected = "-o" in argv
            return Observation(probe_id=kwargs["probe_id"], argv=tuple(argv), started_at=datetime.now(timezone.utc),
                               duration_s=0.0, exit_status=1 if rejected else 0,
                               status=ProbeStatus.FAILED if rejected else ProbeStatus.OK,
                               output="" if rejected else "NAME  CLUSTER  CDS  LDS\n",
                               reason="Error: unknown shorthand flag: 'o' in -o" if rejected else "")

    context.runner = OldIstioctl()  # type: ignore[assignment]
    observation = istioctl.proxy_status(context, Target())

    assert calls == [["istioctl", "proxy-status", "-o", "json"], ["istioctl", "proxy-status"]]
    assert observation.status is ProbeStatus.OK
