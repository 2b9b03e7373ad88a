"""The `--live` options of `mesh-doctor scan`, and the live scan they start.

The flags follow kubectl: `--kubeconfig` (else KUBECONFIG), `--context`,
`-n/--namespace` (repeatable; default: the context's namespace),
`-A/--all-namespaces` and `-l/--selector`. The scope flags `--symptom`,
`--from` and `--to` narrow what is fetched. Progress and notes go to
stderr; the report goes where `scan` sends it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from doctor.live import DEFAULT_CONCURRENCY, DEFAULT_LOG_SINCE, DEFAULT_PROBE_TIMEOUT_S

if TYPE_CHECKING:
    from doctor.live.context import LiveOptions

logger = logging.getLogger(__name__)

USAGE_EXIT = 2


def add_live_arguments(scan: argparse.ArgumentParser) -> None:
    """Add the live-collection flags to the scan subcommand's parser."""
    group = scan.add_argument_group("live collection (read-only) from the cluster of a kube context")
    group.add_argument("--live", action="store_true",
                       help="collect evidence from the cluster instead of reading PATHs")
    group.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    group.add_argument("--context", help="kube context to use (default: the current context)")
    group.add_argument("-n", "--namespace", action="append", dest="namespaces", default=[], metavar="NAMESPACE",
                       help="namespace to read; repeat for several (default: the context's namespace)")
    group.add_argument("-A", "--all-namespaces", action="store_true", help="read every namespace")
    group.add_argument("-l", "--selector", default="", help="label selector for the pods, as in kubectl")
    group.add_argument("--symptom", help="what fails: 503, 403, 401, 429, tls, 137, latency, timeout, sync, "
                       "or a symptom id; fetches only what its candidate causes need")
    group.add_argument("--from", dest="source_workload", metavar="WORKLOAD",
                       help="the calling workload (app label or pod name)")
    group.add_argument("--to", dest="destination_service", metavar="SERVICE",
                       help="the called service (NAME or NAME.NAMESPACE); its selector picks the pods")
    group.add_argument("--concurrency", type=_positive_int, default=DEFAULT_CONCURRENCY,
                       help=f"probes run at the same time (default: {DEFAULT_CONCURRENCY})")
    group.add_argument("--probe-timeout", type=_positive_float, default=DEFAULT_PROBE_TIMEOUT_S, metavar="SECONDS",
                       help=f"timeout of each probe in seconds (default: {DEFAULT_PROBE_TIMEOUT_S:g})")
    group.add_argument("--since", default=DEFAULT_LOG_SINCE,
                       help=f"how far back to read sidecar logs, as kubectl logs --since (default: {DEFAULT_LOG_SINCE})")
    group.add_argument("--save-bundle", metavar="DIR",
                       help="also write the observations as a bundle to this new folder (secrets masked)")
    group.add_argument("--allow-capture", action="store_true",
                       help="allow a packet capture in an ephemeral debug container without asking")
    group.add_argument("--plan", action="store_true",
                       help="print the probes, namespaces and RBAC permissions a live scan would use, and exit "
                       "without contacting the cluster")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def options_from_arguments(arguments: argparse.Namespace) -> "LiveOptions":
    from doctor.live.context import LiveOptions

    return LiveOptions(
        kubeconfig=arguments.kubeconfig, context=arguments.context,
        namespaces=tuple(arguments.namespaces), all_namespaces=arguments.all_namespaces,
        selector=arguments.selector, symptom=arguments.symptom,
        source_workload=arguments.source_workload, destination_service=arguments.destination_service,
        concurrency=arguments.concurrency, probe_timeout_s=arguments.probe_timeout,
        log_since=arguments.since, allow_capture=arguments.allow_capture)


def context_namespace(options: "LiveOptions") -> str:
    """Return the namespace of the kube context in use as kubectl would, or "default" when it names none."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        contexts, active = config.list_kube_config_contexts(config_file=options.kubeconfig_path())
    except (ConfigException, OSError, ValueError, TypeError) as error:
        logger.info("cannot read the contexts of %s: %s", options.kubeconfig_path(), error)
        return "default"
    chosen = active
    if options.context:
        chosen = next((c for c in contexts if c.get("name") == options.context), None)
    return ((chosen or {}).get("context") or {}).get("namespace") or "default"


def _ask_on_terminal(description: str) -> bool:
    print(f"mesh-doctor: the next probe would {description}.", file=sys.stderr)
    try:
        answer = input("Start this packet capture? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _print_plan(options: "LiveOptions", engine: Any) -> int:
    """Print what a live scan with these options would read, without contacting the cluster."""
    from doctor.live.plan import ScopeError, plan_probes
    from doctor.live.registry import default_probes

    try:
        plan = plan_probes(default_probes(), engine.rulebook, options, context_namespace(options),
                           capture_possible=options.allow_capture)
    except ScopeError as error:
        print(f"mesh-doctor: {error}", file=sys.stderr)
        return USAGE_EXIT

    where = ", ".join(ns or "all namespaces" for ns in plan.namespaces)
    print(f"live scan{f' for {plan.symptom}' if plan.symptom else ''} in {where}: {len(plan.specs)} probes")
    for spec in plan.specs:
        needs = ", ".join(spec.programs) or "kubernetes client"
        rbac = "; ".join(str(permission) for permission in spec.permissions) or "no RBAC"
        print(f"  {spec.id:<32} {spec.scope:<9} {needs:<18} {rbac}")
    for note in plan.notes:
        print(f"note: {note}")
    return 0


def _failure_summary(observations: list, limit: int = 5) -> list[str]:
    """Group the probes that did not return ok by status and reason, most frequent first."""
    groups: dict[tuple[str, str], list[str]] = {}
    for observation in observations:
        if observation.status.value == "ok":
            continue
        reason = observation.reason.splitlines()[0] if observation.reason else "no reason given"
        if observation.target:
            reason = reason.replace(observation.target, "TARGET")
        groups.setdefault((observation.status.value, reason), []).append(observation.probe_id)
    ranked = sorted(groups.items(), key=lambda item: -len(item[1]))
    lines = []
    for (status, reason), probe_ids in ranked[:limit]:
        names = ", ".join(sorted(set(probe_ids)))
        lines.append(f"{len(probe_ids)} probe run(s) {status} ({names}): {reason[:300]}")
    if len(ranked) > limit:
        lines.append(f"{len(ranked) - limit} more reasons; --save-bundle keeps every observation with its reason")
    return lines


def live_diagnosis(arguments: argparse.Namespace, engine: Any) -> Any:
    """Run the live collection the arguments describe and diagnose it, returning a Diagnosis or an exit code."""
    from doctor.live.collect import Collector, diagnose_live, statuses
    from doctor.live.context import ProbeContext
    from doctor.live.plan import ScopeError
    from doctor.live.registry import default_probes

    if arguments.paths:
        print("mesh-doctor: give evidence PATHs or --live, not both", file=sys.stderr)
        return USAGE_EXIT
    if not arguments.live:
        print("mesh-doctor: give evidence PATHs to read, or --live to collect from the cluster", file=sys.stderr)
        return USAGE_EXIT
    if arguments.save_bundle and os.path.exists(arguments.save_bundle) and os.listdir(arguments.save_bundle):
        print(f"mesh-doctor: {arguments.save_bundle} exists and is not empty; give a new folder to "
              "--save-bundle", file=sys.stderr)
        return USAGE_EXIT

    options = options_from_arguments(arguments)
    if arguments.plan:
        return _print_plan(options, engine)
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    context = ProbeContext.build(options, confirm_capture=_ask_on_terminal if interactive else None)
    collector = Collector(context, default_probes(), engine.rulebook)
    try:
        result = collector.collect(context_namespace(options), capture_possible=options.allow_capture or interactive)
    except ScopeError as error:
        print(f"mesh-doctor: {error}", file=sys.stderr)
        return USAGE_EXIT
    finally:
        context.close()

    plan = result.plan
    counts = ", ".join(f"{count} {status}" for status, count in sorted(statuses(result.observations).items()))
    scope = f" for {plan.symptom}" if plan.symptom else ""
    where = ", ".join(ns or "all namespaces" for ns in plan.namespaces)
    print(f"mesh-doctor: live collection{scope} in {where}: {len(result.observations)} probe runs ({counts})",
          file=sys.stderr)
    for note in plan.notes:
        print(f"mesh-doctor: note: {note}", file=sys.stderr)
    for line in _failure_summary(result.observations):
        print(f"mesh-doctor: {line}", file=sys.stderr)

    if arguments.save_bundle:
        path = result.save_bundle(arguments.save_bundle)
        print(f"mesh-doctor: saved the observations to {path}; `mesh-doctor scan {path}` reads them offline",
              file=sys.stderr)
    return diagnose_live(result, engine)
