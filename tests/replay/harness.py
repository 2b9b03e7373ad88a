"""Run a live collection against a replay server, for the tests and the benchmark."""

from __future__ import annotations

from doctor.live.collect import Collector, LiveResult, diagnose_live
from doctor.live.context import LiveOptions, ProbeContext
from doctor.live.registry import default_probes
from doctor.scan import Engine
from tests.replay.scenario import NAMESPACE
from tests.replay.server import ReplayServer


def collect(server: ReplayServer, engine: Engine, *, confirm=None, capture_possible: bool = False,
            search_path=None, **option_values) -> LiveResult:
    """Run a live collection against `server` with `option_values` as `LiveOptions` fields."""
    option_values.setdefault("namespaces", (NAMESPACE,))
    option_values.setdefault("probe_timeout_s", 15.0)
    options = LiveOptions(kubeconfig=str(server.write_kubeconfig(namespace=NAMESPACE)), **option_values)
    context = ProbeContext.build(options, search_path=search_path, confirm_capture=confirm)
    try:
        return Collector(context, default_probes(), engine.rulebook).collect(NAMESPACE,
                                                                          capture_possible=capture_possible)
    finally:
        context.close()


def diagnose(result: LiveResult, engine: Engine):
    return diagnose_live(result, engine)
