"""Run a live collection: preflight, probes in parallel with a bound, and the observations as a bundle.

The collection runs in three waves, each through one bounded thread pool:

1. preflight: every program a planned probe needs is looked up on PATH, and
   every RBAC permission is asked once with `kubectl auth can-i`;
2. the cluster and namespace probes (pods, events, services, policies);
3. the pod probes on the pods the scope picks from the pods just read.

A probe whose program is missing is `unavailable`. A probe whose permission
`auth can-i` denied is `forbidden` without running. A probe that raises is
`failed`, and one that outlives its timeout by the grace period is
`timed_out`. Each of them is an observation with the reason, so the
collection always finishes and the engine reports those checks as not checked.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from doctor.live.context import ProbeContext
from doctor.live.plan import Plan, Task, choose_pods, namespace_tasks, plan_probes, pod_tasks, pods_from, service_selectors
from doctor.live.registry import Permission, ProbeRegistry, ProbeSpec
from doctor.model import Document, Observation, ProbeStatus
from doctor.redact import redact_text
from doctor.rules import Rulebook

if TYPE_CHECKING:
    from doctor.diagnosis import Diagnosis
    from doctor.scan import Engine

logger = logging.getLogger(__name__)

# Time a probe may run past its own timeout before the collection stops waiting for it.
GRACE_S = 5.0
PREFLIGHT_PROBE_ID = "preflight.can-i"


# Reasons of the probes a cancel stopped: started and abandoned, or never started.
CANCELLED_REASON = "cancelled by the engineer before it finished"
NOT_RUN_REASON = "not run: cancelled by the engineer before it started"


@dataclass(frozen=True)
class Progress:
    """One finished probe run, for a progress display: counts so far and the observation.

    `running` names the probes of the wave that started and have not finished yet.
    """

    done: int
    total: int
    wave: str
    observation: Observation
    running: tuple[str, ...] = ()


ProgressCallback = Callable[[Progress], None]


@dataclass
class LiveResult:
    """Everything a live collection produced: the plan, the preflight results and the probe observations."""

    plan: Plan
    observations: list[Observation] = field(default_factory=list)
    preflight: list[Observation] = field(default_factory=list)
    cancelled: bool = False

    def not_run(self) -> list[Observation]:
        """Return the observations of the probes a cancel kept from starting."""
        return [observation for observation in self.observations + self.preflight
                if observation.reason == NOT_RUN_REASON]

    def documents(self) -> list[Document]:
        """Return one document per ok observation, masked as a bundle would store it.

        Each source is the file name the observation gets in a saved bundle,
        so evidence cited from a live scan points into `--save-bundle`'s folder.
        """
        from doctor.bundle import _output_name

        documents = []
        for index, observation in enumerate(self.observations, start=1):
            if observation.status is ProbeStatus.OK and observation.output:
                documents.append(Document(f"live:{_output_name(index, observation)}", redact_text(observation.output)))
        return documents

    def save_bundle(self, directory: str | Path) -> Path:
        """Write the observations (preflight results included) as a bundle with secrets masked."""
        from doctor.bundle import write_bundle

        description = "live collection" + (f" for {self.plan.symptom}" if self.plan.symptom else "")
        if self.plan.namespaces:
            description += " in " + ", ".join(ns or "all namespaces" for ns in self.plan.namespaces)
        return write_bundle(directory, self.observations + self.preflight, description=description)


class Collector:
    """Runner of a plan's probes against one cluster, through a bounded pool of threads."""

    def __init__(self, context: ProbeContext, registry: ProbeRegistry, rulebook: Rulebook, *,
                 progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> None:
        self.context = context
        self.registry = registry
        self.rulebook = rulebook
        self.progress = progress
        self.cancel = cancel or threading.Event()

    def collect(self, default_namespace: str, *, capture_possible: bool = False) -> LiveResult:
        """Plan, preflight and run every probe. Raises ScopeError only for an unknown symptom."""
        options = self.context.options
        plan = plan_probes(self.registry, self.rulebook, options, default_namespace,
                           capture_possible=capture_possible)
        result = LiveResult(plan)
        logger.info("live collection: %d probes planned in %s", len(plan.specs), plan.namespaces)

        denied, result.preflight = self._preflight(plan)
        first = namespace_tasks(plan)
        result.observations.extend(self.run_tasks(first, denied, wave="namespaces"))

        pods = pods_from(result.observations)
        chosen, destinations = choose_pods(pods, options, service_selectors(result.observations), plan.notes)
        second = pod_tasks(plan, chosen, destinations)
        result.observations.extend(self.run_tasks(second, denied, wave="pods"))
        result.cancelled = self.cancel.is_set()
        return result

    # --- preflight ---------------------------------------------------------------------

    def _preflight(self, plan: Plan) -> tuple[dict[tuple[Permission, str], Observation], list[Observation]]:
        """Run `kubectl auth can-i` once per permission and namespace, returning the denials and every result."""
        runner = self.context.runner
        if runner.which("kubectl") is None:
            logger.info("kubectl not found on PATH: no RBAC preflight, so the API server's 403s are the only check")
            return {}, []

        questions: list[tuple[Permission, str]] = []
        for spec in plan.specs:
            namespaces = [""] if spec.scope == "cluster" else plan.namespaces
            for permission in spec.permissions:
                for namespace in namespaces:
                    if (permission, namespace) not in questions:
                        questions.append((permission, namespace))

        def ask(question: tuple[Permission, str]) -> Observation:
            permission, namespace = question
            argv = self.context.kubectl("auth", "can-i", *permission.can_i_arguments())
            if namespace:
                argv += ["-n", namespace]
            elif self.context.options.all_namespaces:
                argv.append("-A")
            answer = runner.run(argv, probe_id=PREFLIGHT_PROBE_ID, target=namespace or "cluster",
                                timeout=self.context.options.probe_timeout_s)
            # `auth can-i` prints yes, or prints no (with " - REASON" when the authorizer gave one)
            # and exits 1. Both are results, not failures.
            if _can_i_word(answer.output) in ("yes", "no"):
                answer = replace(answer, status=ProbeStatus.OK)
            return answer

        answers = self._map(ask, questions, wave="preflight")
        denied = {question: answer for question, answer in zip(questions, answers)
                  if answer.status is ProbeStatus.OK and _can_i_word(answer.output) == "no"}
        return denied, answers

    # --- running ---------------------------------------------------------------------------

    def run_tasks(self, tasks: Sequence[Task], denied: dict[tuple[Permission, str], Observation] | None = None,
                  *, wave: str = "probes") -> list[Observation]:
        """Run `tasks` in parallel, at most `concurrency` at a time, returning one observation per task in order."""
        denied = denied or {}

        def run_one(task: Task) -> Observation:
            blocked = self._blocked(task, denied)
            if blocked is not None:
                return blocked
            try:
                return task.spec.function(self.context, task.target)
            except Exception as error:  # noqa: BLE001 - a broken probe must not stop the collection
                logger.exception("probe %s on %s failed", task.spec.id, task.target.label())
                return _observation(task, ProbeStatus.FAILED,
                                    f"the probe failed: {type(error).__name__}: {error}")

        return self._map(run_one, tasks, wave=wave, task_of=lambda task: task)

    def _blocked(self, task: Task, denied: dict[tuple[Permission, str], Observation]) -> Observation | None:
        for program in task.spec.programs:
            if self.context.runner.which(program) is None:
                return _observation(task, ProbeStatus.UNAVAILABLE,
                                    f"{program} not found on PATH; install it or add its directory to PATH")
        state = task.target.proxy_state
        if task.spec.needs_running_proxy and state and state != "running":
            return _observation(task, ProbeStatus.UNAVAILABLE,
                                f"istio-proxy in pod {task.target.label()} is not running ({state}), so its "
                                "admin API cannot be read; its previous log shows why it stopped")
        namespace = "" if task.spec.scope == "cluster" else task.target.namespace
        for permission in task.spec.permissions:
            keys = [(permission, namespace)]
            if self.context.options.all_namespaces:
                # With -A the preflight asked once for all namespaces, under the empty namespace.
                keys.append((permission, ""))
            denied_key = next((key for key in keys if key in denied), None)
            if denied_key is None:
                continue
            question = " ".join(["kubectl auth can-i", *permission.can_i_arguments()])
            if denied_key[1]:
                question += f" -n {denied_key[1]}"
            elif self.context.options.all_namespaces and task.spec.scope != "cluster":
                question += " -A"
            return _observation(task, ProbeStatus.FORBIDDEN,
                                f"RBAC denies it: `{question}` answered no; ask for the permission to {permission}")
        return None

    def _map(self, function: Callable, items: Sequence, *, wave: str,
             task_of: Callable | None = None) -> list[Observation]:
        """Apply `function` to `items` in a bounded pool, waiting at most timeout + grace per item."""
        if not items:
            return []
        options = self.context.options
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.concurrency),
                                                     thread_name_prefix=f"probe-{wave}")
        results: list[Observation | None] = [None] * len(items)
        started: dict[int, float] = {}
        lock = threading.Lock()

        def call(index: int) -> Observation:
            if self.cancel.is_set():
                # Queued before the cancel; a later wave after it starts nothing either.
                return self._placeholder(items[index], task_of, ProbeStatus.FAILED, NOT_RUN_REASON)
            with lock:
                started[index] = time.monotonic()
            return function(items[index])

        def running() -> tuple[str, ...]:
            with lock:
                begun = sorted(started)
            return tuple(self._short_label(items[index], task_of) for index in begun if results[index] is None)

        futures = {pool.submit(call, index): index for index in range(len(items))}
        pending = set(futures)
        done_count = 0
        try:
            while pending:
                finished, pending = concurrent.futures.wait(pending, timeout=0.1,
                                                            return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    index = futures[future]
                    results[index] = self._result_of(future, items[index], task_of)
                    done_count += 1
                    self._report(done_count, len(items), wave, results[index], running())

                if self.cancel.is_set():
                    for future in list(pending):
                        index = futures[future]
                        future.cancel()
                        with lock:
                            began = index in started
                        results[index] = self._placeholder(items[index], task_of, ProbeStatus.FAILED,
                                                           CANCELLED_REASON if began else NOT_RUN_REASON)
                        done_count += 1
                        self._report(done_count, len(items), wave, results[index])
                    pending = set()
                    break

                now = time.monotonic()
                for future in list(pending):
                    index = futures[future]
                    with lock:
                        began = started.get(index)
                    limit = self._timeout_of(items[index], task_of) + GRACE_S
                    if began is not None and now - began > limit:
                        logger.warning("%s: stopped waiting after %.0f s", self._label(items[index], task_of), limit)
                        results[index] = self._placeholder(items[index], task_of, ProbeStatus.TIMED_OUT,
                                                           f"no result after {limit:g} s; the collection went on "
                                                           "without it")
                        pending.discard(future)
                        done_count += 1
                        self._report(done_count, len(items), wave, results[index], running())
        finally:
            # NOTE: an abandoned probe thread keeps running, and Python joins pool threads at exit.
            # The runner's and the API client's own timeouts are what end it.
            pool.shutdown(wait=False, cancel_futures=True)
        return [result for result in results if result is not None]

    def _result_of(self, future: concurrent.futures.Future, item: object, task_of: Callable | None) -> Observation:
        try:
            return future.result()
        except Exception as error:  # noqa: BLE001 - reported as a failed observation
            return self._placeholder(item, task_of, ProbeStatus.FAILED, f"{type(error).__name__}: {error}")

    def _timeout_of(self, item: object, task_of: Callable | None) -> float:
        if task_of is not None:
            spec: ProbeSpec = task_of(item).spec
            if spec.timeout_s is not None:
                return spec.timeout_s
        return self.context.options.probe_timeout_s

    @classmethod
    def _label(cls, item: object, task_of: Callable | None) -> str:
        kind = "probe" if task_of is not None else "preflight"
        return f"{kind} {cls._short_label(item, task_of)}"

    @staticmethod
    def _short_label(item: object, task_of: Callable | None) -> str:
        if task_of is not None:
            task = task_of(item)
            return f"{task.spec.id} on {task.target.label()}"
        permission, namespace = item  # a preflight question
        return f"can-i {' '.join(permission.can_i_arguments())} in {namespace or 'the cluster'}"

    @staticmethod
    def _placeholder(item: object, task_of: Callable | None, status: ProbeStatus, reason: str) -> Observation:
        if task_of is not None:
            return _observation(task_of(item), status, reason)
        permission, namespace = item  # a preflight question
        return Observation(probe_id=PREFLIGHT_PROBE_ID,
                           argv=("kubectl", "auth", "can-i", *permission.can_i_arguments()),
                           started_at=datetime.now(timezone.utc), duration_s=0.0, exit_status=None,
                           status=status, output="", reason=reason, target=namespace or "cluster")

    def _report(self, done: int, total: int, wave: str, observation: Observation | None,
                running: tuple[str, ...] = ()) -> None:
        if self.progress is None or observation is None:
            return
        try:
            self.progress(Progress(done, total, wave, observation, running))
        except Exception:  # noqa: BLE001 - a display error must not stop the collection
            logger.exception("progress callback failed")


def _can_i_word(output: str) -> str:
    words = output.split()
    return words[0] if words else ""


def _observation(task: Task, status: ProbeStatus, reason: str) -> Observation:
    return Observation(probe_id=task.spec.id, argv=(), started_at=datetime.now(timezone.utc), duration_s=0.0,
                       exit_status=None, status=status, output="", reason=reason, target=task.target.label())


def diagnose_live(result: LiveResult, engine: "Engine", *, now: datetime | None = None) -> "Diagnosis":
    """Diagnose a live collection with the same readers and engine as a bundle on disk."""
    from doctor.engine import diagnose
    from doctor.readers import read_documents

    read = read_documents(result.documents(), engine.rulebook.signatures)
    diagnosis = diagnose(read.facts, engine.rulebook, engine.registry, result.observations, now=now)
    diagnosis.inputs = list(read.inputs)
    return diagnosis


def statuses(observations: Iterable[Observation]) -> dict[str, int]:
    """Count observations per status, for a summary line."""
    counts: dict[str, int] = {}
    for observation in observations:
        counts[observation.status.value] = counts.get(observation.status.value, 0) + 1
    return counts
