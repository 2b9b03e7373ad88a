"""Benchmark the live probes' parallel runner against a slow API server, and record the results.

Starts the replay API server (tests/replay) on 127.0.0.1, in its own
process, with 200 ms added to every response. The same 40 probe runs of a full live collection of the
recorded OOM incident (API lists through the kubernetes client, `kubectl
logs` and `kubectl exec ... pilot-agent request GET`) then run three ways:
one at a time (what a shell script of kubectl calls does), with the default
bound of 8, and with a bound of 40, after one untimed warm-up pass that fills
kubectl's discovery cache. The figure of merit is the wall time of a pass
against the slowest single probe run of the sequential pass, where no run
competes with another for the CPUs. Writes the section
"Live probes against a slow API server" of docs/benchmarks.md.
"""

from __future__ import annotations

import os
import platform
import re
import signal
import subprocess
import sys
import json
import tempfile
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from doctor.live import DEFAULT_CONCURRENCY  # noqa: E402
from doctor.live.collect import Collector  # noqa: E402
from doctor.live.context import LiveOptions, ProbeContext  # noqa: E402
from doctor.live.plan import choose_pods, namespace_tasks, plan_probes, pod_tasks, pods_from, service_selectors  # noqa: E402
from doctor.live.registry import default_probes  # noqa: E402
from doctor.scan import load_engine  # noqa: E402
from tests.replay.scenario import NAMESPACE  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
TITLE = "## Live probes against a slow API server"
PROBES = 40
DELAY_S = 0.2
TARGET_RATIO = 1.5
# Passes per bound; the fastest is kept, because other work on the machine only slows a pass down.
REPEATS = 3


def start_server(folder: Path) -> tuple[subprocess.Popen, Path]:
    """Start the replay server in its own process, so it does not share this one's interpreter lock."""
    kubeconfig = folder / "kubeconfig"
    process = subprocess.Popen([sys.executable, "-m", "tests.replay", "--kubeconfig", str(kubeconfig),
                                "--delay", str(DELAY_S)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    first_line = process.stdout.readline() if process.stdout else ""
    if "kubeconfig written" not in first_line:
        process.kill()
        raise SystemExit(f"the replay server did not start: {first_line!r}")
    return process, kubeconfig


def stop_server(process: subprocess.Popen) -> str:
    """Stop the replay server and return its last line, the count of requests it served."""
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=10)
    return output.strip().splitlines()[-1] if output.strip() else "no request count printed"


def build_tasks(kubeconfig: Path, engine) -> tuple[list, ProbeContext]:
    """Plan a full collection of three namespaces and keep 40 probe runs that each reach the server."""
    options = LiveOptions(kubeconfig=str(kubeconfig),
                          namespaces=(NAMESPACE, "istio-system", "default"),
                          concurrency=PROBES, probe_timeout_s=30.0)
    context = ProbeContext.build(options)
    registry = default_probes()
    plan = plan_probes(registry, engine.rulebook, options, NAMESPACE, capture_possible=False)
    collector = Collector(context, registry, engine.rulebook)
    first = [task for task in namespace_tasks(plan) if not task.spec.programs]
    observations = collector.run_tasks(first)
    chosen, destinations = choose_pods(pods_from(observations), options, service_selectors(observations), [])
    second = [task for task in pod_tasks(plan, chosen, destinations)
              if task.spec.programs == ("kubectl",)
              and not (task.spec.needs_running_proxy and task.target.proxy_state != "running")]
    tasks = (second + first)[:PROBES]
    if len(tasks) < PROBES:
        raise SystemExit(f"only {len(tasks)} probe runs planned; the benchmark needs {PROBES}")
    return tasks, context


def run_pass(context: ProbeContext, engine, tasks: list, concurrency: int) -> dict:
    options = LiveOptions(**{**context.options.__dict__, "concurrency": concurrency})
    pass_context = ProbeContext.build(options)
    # Discovery of the Istio API groups is shared by a collection; fetch it before the clock starts.
    for group in ("security.istio.io", "networking.istio.io"):
        from doctor.live.kubeapi import served_versions

        served_versions(pass_context, group)
    collector = Collector(pass_context, default_probes(), engine.rulebook)

    started = time.monotonic()
    observations = collector.run_tasks(tasks)
    wall = time.monotonic() - started
    pass_context.close()

    slowest = max(observations, key=lambda observation: observation.duration_s)
    failed = [o for o in observations if o.status.value != "ok"]
    return {"concurrency": concurrency, "wall": wall, "slowest": slowest.duration_s,
            "slowest_probe": f"{slowest.probe_id} on {slowest.target}", "runs": len(observations),
            "not_ok": len(failed), "kinds": sorted({o.probe_id.split(".")[0] for o in observations})}


def ratio_to(result: dict, baseline: dict) -> float:
    """Return the pass's wall time over the slowest run of the sequential pass."""
    return result["wall"] / baseline["slowest"]


def kubectl_version() -> str:
    """Return the path and client version of the kubectl the probes run."""
    from doctor.runner import Runner

    runner = Runner()
    path = runner.which("kubectl") or "kubectl"
    observation = runner.run([path, "version", "--client", "-o", "json"], probe_id="bench.kubectl-version",
                             timeout=30)
    try:
        version = json.loads(observation.output)["clientVersion"]["gitVersion"]
    except (ValueError, KeyError, TypeError):
        version = "unknown version"
    return f"{path} {version}"


def write_doc(results: list[dict], served: str) -> None:
    baseline = results[0]
    rows = []
    for result in results:
        ratio = ratio_to(result, baseline)
        met = "yes" if ratio <= TARGET_RATIO else "no"
        rows.append(f"| {result['concurrency']} | {result['wall']:.2f} s | {ratio:.2f}× | {met} | "
                    f"{result['slowest']:.2f} s ({result['slowest_probe']}) |")
    cpus = os.cpu_count()
    widest = results[-1]
    if ratio_to(widest, baseline) <= TARGET_RATIO:
        widest_text = f"With a bound of {widest['concurrency']} every run starts at once and the target is met."
    else:
        widest_text = (f"Even with a bound of {widest['concurrency']} the target is missed: started together, "
                       f"the kubectl processes compete for the {cpus} CPUs, and the slowest run grows from "
                       f"{baseline['slowest']:.2f} s alone to {widest['slowest']:.2f} s.")
    conclusion = textwrap.fill(
        f"With a bound of {DEFAULT_CONCURRENCY}, {PROBES} runs need at least {PROBES // DEFAULT_CONCURRENCY} rounds, so the "
        f"wall time cannot come near the slowest single run. {widest_text} The default bound stays at "
        f"{DEFAULT_CONCURRENCY} to keep the load on a struggling API server bounded; `--concurrency` raises it.",
        width=78)
    section = f"""{TITLE}

`make bench` (benchmarks/live_probes.py), run on {datetime.now(timezone.utc):%Y-%m-%d}.
Machine: {cpus} CPUs (os.cpu_count), Python {platform.python_version()}, kubectl {kubectl_version()}.

The replay API server (tests/replay) serves the recorded sidecar OOM incident
on 127.0.0.1 over HTTPS and holds back every response by {DELAY_S * 1000:.0f} ms. The same
{PROBES} probe runs of a full live collection ({", ".join(results[0]["kinds"])} probes: API lists
through the kubernetes client, `kubectl logs`, `kubectl exec ... pilot-agent request
GET`) run one at a time (the peer: what a shell script of kubectl calls does),
with the default bound of {DEFAULT_CONCURRENCY}, and with a bound of {PROBES}, after an untimed
warm-up pass that fills kubectl's discovery cache; each is the fastest of
{REPEATS} passes. The RBAC preflight and the Istio API discovery are not timed. A kubectl run makes several API requests
(the pod, then the log or exec), each {DELAY_S * 1000:.0f} ms late, so the slowest single
probe run is a kubectl one. The server runs in its own process and reported
"{served}" (planning and warm-up included).
Target: wall time at most {TARGET_RATIO}× the slowest single run, taken from the
sequential pass ({baseline['slowest']:.2f} s, {baseline['slowest_probe']}), where no run
competes for the {cpus} CPUs.

| bound | wall time | ratio to the slowest single run | target met | slowest run in this pass |
| --- | --- | --- | --- | --- |
{chr(10).join(rows)}

{conclusion}
"""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    existing = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(TITLE)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(existing):
        updated = pattern.sub(lambda _: section + "\n", existing)
    else:
        updated = existing.rstrip("\n") + "\n\n" + section
    DOC.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    engine = load_engine()
    with tempfile.TemporaryDirectory(prefix="mesh-doctor-bench-") as folder:
        process, kubeconfig = start_server(Path(folder))
        try:
            tasks, context = build_tasks(kubeconfig, engine)
            run_pass(context, engine, tasks, DEFAULT_CONCURRENCY)
            results = [min((run_pass(context, engine, tasks, concurrency) for _ in range(REPEATS)),
                           key=lambda result: result["wall"])
                       for concurrency in (1, DEFAULT_CONCURRENCY, PROBES)]
            context.close()
        finally:
            served = stop_server(process)
    for result in results:
        print(f"bound {result['concurrency']:>2}: wall {result['wall']:.2f} s, ratio to the slowest single run "
              f"{ratio_to(result, results[0]):.2f}, slowest run in the pass {result['slowest']:.2f} s "
              f"({result['slowest_probe']}), {result['not_ok']} of {result['runs']} not ok")
    write_doc(results, served)
    print(f"wrote the section {TITLE[3:]!r} of {DOC}")


if __name__ == "__main__":
    main()
