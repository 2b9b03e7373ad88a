"""A cancel during a live collection: running probes are abandoned, queued ones are reported as not run."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from doctor.live.collect import CANCELLED_REASON, NOT_RUN_REASON, Collector
from doctor.live.context import LiveOptions, ProbeContext
from doctor.live.plan import Task
from doctor.live.registry import ProbeRegistry, Target
from doctor.model import Observation, ProbeStatus


def _ok(probe_id: str, target: Target) -> Observation:
    return Observation(probe_id=probe_id, argv=("true",), started_at=datetime.now(timezone.utc), duration_s=0.0,
                       exit_status=0, status=ProbeStatus.OK, output="done\n", target=target.label())


def _collector(tmp_path, functions, *, concurrency):
    registry = ProbeRegistry()
    for name, function in functions:
        registry.register(f"test.{name}", function, f"{name} probe", scope="namespace")
    context = ProbeContext.build(LiveOptions(kubeconfig=str(tmp_path / "none"), probe_timeout_s=30.0,
                                             concurrency=concurrency), search_path=[str(tmp_path)])
    tasks = [Task(spec, Target(namespace="shop")) for spec in registry.specs()]
    return Collector(context, registry, rulebook=None), tasks  # type: ignore[arg-type]


def test_cancel_reports_queued_probes_not_run(tmp_path):
    release = threading.Event()
    began = threading.Event()

    def holds(context, target):
        began.set()
        release.wait(30)
        return _ok("test.holds", target)

    def follows(context, target):
        # The engineer cancels while this probe ends, so the thread it frees finds the cancel set.
        began.wait(10)
        collector.cancel.set()
        return _ok("test.follows", target)

    def queued(context, target):
        return _ok("test.queued", target)

    collector, tasks = _collector(tmp_path, [("holds", holds), ("follows", follows), ("queued", queued)],
                                  concurrency=2)
    seen = []
    collector.progress = seen.append

    observations = collector.run_tasks(tasks, wave="namespaces")
    release.set()

    followed = [progress for progress in seen if progress.observation.probe_id == "test.follows"]
    assert followed[0].running == ("test.holds on shop",)
    assert [o.probe_id for o in observations] == ["test.holds", "test.follows", "test.queued"]
    assert observations[0].reason == CANCELLED_REASON
    assert observations[1].status is ProbeStatus.OK
    assert observations[2].reason == NOT_RUN_REASON
    assert sorted(progress.done for progress in seen) == [1, 2, 3]


def test_wave_after_cancel_starts_nothing(tmp_path):
    calls = []

    def counted(context, target):
        calls.append(target.label())
        return _ok("test.counted", target)

    collector, tasks = _collector(tmp_path, [("counted", counted)], concurrency=1)
    collector.cancel.set()

    observations = collector.run_tasks(tasks, wave="pods")

    assert calls == []
    assert [o.reason for o in observations] == [NOT_RUN_REASON]
    assert observations[0].status is ProbeStatus.FAILED
