"""The collector's bounded pool: a probe that raises or hangs becomes an observation, and the rest still run."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from doctor.live import collect as collect_module
from doctor.live.collect import Collector
from doctor.live.context import LiveOptions, ProbeContext
from doctor.live.plan import Task
from doctor.live.registry import ProbeRegistry, Target
from doctor.model import Observation, ProbeStatus


def quick(context, target):
    """Return an ok observation at once."""
    return Observation(probe_id="test.quick", argv=("true",), started_at=datetime.now(timezone.utc), duration_s=0.0,
                       exit_status=0, status=ProbeStatus.OK, output="done\n", target=target.label())


def broken(context, target):
    """Raise, as a probe with a bug would."""
    raise KeyError("items")


def build(tmp_path, *functions, timeout_s=5.0):
    registry = ProbeRegistry()
    for function in functions:
        registry.register(f"test.{function.__name__}", function, function.__doc__, scope="namespace")
    context = ProbeContext.build(LiveOptions(kubeconfig=str(tmp_path / "none"), probe_timeout_s=timeout_s,
                                             concurrency=2), search_path=[str(tmp_path)])
    tasks = [Task(spec, Target(namespace="shop")) for spec in registry.specs()]
    return Collector(context, registry, rulebook=None), tasks  # type: ignore[arg-type]


def test_raising_probe_becomes_failed(tmp_path):
    collector, tasks = build(tmp_path, broken, quick)

    observations = collector.run_tasks(tasks)

    assert [o.probe_id for o in observations] == ["test.broken", "test.quick"]
    assert observations[0].status is ProbeStatus.FAILED
    assert observations[0].reason == "the probe failed: KeyError: 'items'"
    assert observations[1].status is ProbeStatus.OK


def test_hanging_probe_abandoned(tmp_path, monkeypatch):
    release = threading.Event()

    def hangs(context, target):
        """Wait far beyond the probe timeout."""
        release.wait(30)
        return quick(context, target)

    monkeypatch.setattr(collect_module, "GRACE_S", 0.2)
    collector, tasks = build(tmp_path, hangs, quick, timeout_s=0.3)

    observations = collector.run_tasks(tasks)
    release.set()

    assert observations[0].status is ProbeStatus.TIMED_OUT
    assert "no result after 0.5 s" in observations[0].reason
    assert observations[1].status is ProbeStatus.OK


def test_progress_reports_every_probe(tmp_path):
    seen = []
    collector, tasks = build(tmp_path, quick, broken)
    collector.progress = seen.append

    collector.run_tasks(tasks, wave="namespaces")

    assert sorted(progress.done for progress in seen) == [1, 2]
    assert {progress.total for progress in seen} == {2}
    assert {progress.wave for progress in seen} == {"namespaces"}
