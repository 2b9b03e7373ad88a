"""kubectl top and Prometheus exposition parser tests on recorded outputs."""

from __future__ import annotations

from pathlib import Path

from doctor.model import Document
from doctor.parsers import resources

RECORDED = Path(__file__).resolve().parent.parent / "data" / "recorded"
INCIDENT = RECORDED / "oom-incident"


def read(path: Path) -> Document:
    return Document(str(path), path.read_text())


def test_top_pod_containers() -> None:
    document = read(INCIDENT / "kubectl-top-pod-containers.txt")
    result = resources.parse(document)
    proxy = result.facts[1]

    assert resources.sniff(document)
    assert result.kind == resources.KIND_TOP
    assert result.problems == []
    assert len(result.facts) == 4
    assert (proxy.pod, proxy.container) == ("checkout-7c9d8b6f5-x2x7k", "istio-proxy")
    assert proxy.cpu_millicores == 187
    assert proxy.memory_bytes == 62 * 1024 * 1024
    assert proxy.line == 3
    assert proxy.text.startswith("checkout-7c9d8b6f5-x2x7k   istio-proxy")


def test_top_with_namespace_and_pod_level_rows() -> None:
    rows = (INCIDENT / "kubectl-top-pod-containers.txt").read_text().splitlines()
    all_namespaces = "\n".join(["NAMESPACE   " + rows[0]] + ["shop        " + row for row in rows[1:]])
    pod_level = "NAME                       CPU(cores)   MEMORY(bytes)\ncheckout-7c9d8b6f5-x2x7k   218m         259Mi\n"

    namespaced = resources.parse(Document("top-a.txt", all_namespaces))
    pods = resources.parse(Document("top.txt", pod_level))

    assert {usage.namespace for usage in namespaced.facts} == {"shop"}
    assert namespaced.facts[1].container == "istio-proxy"
    assert pods.facts[0].container is None
    assert pods.facts[0].memory_bytes == 259 * 1024 * 1024


def test_top_bad_rows_are_problems() -> None:
    text = (INCIDENT / "kubectl-top-pod-containers.txt").read_text()
    text += "checkout-x   istio-proxy   lots   62Mi\nshort row\n"
    result = resources.parse(Document("top.txt", text))

    assert len(result.facts) == 4
    assert [problem.line for problem in result.problems] == [6, 7]
    assert "'lots'" in result.problems[0].message


def test_cadvisor_exposition() -> None:
    document = read(INCIDENT / "kubelet-cadvisor-worker-2.txt")
    result = resources.parse(document)
    throttled = [sample for sample in result.facts if sample.name == resources.CPU_THROTTLED_PERIODS]

    assert resources.sniff(document)
    assert result.kind == resources.KIND_METRICS
    assert result.problems == []
    assert {sample.name for sample in result.facts} == {
        resources.CPU_PERIODS, resources.CPU_THROTTLED_PERIODS,
        resources.CPU_THROTTLED_SECONDS, resources.MEMORY_WORKING_SET}
    assert throttled[0].labels["container"] == "istio-proxy"
    assert throttled[0].labels["pod"] == "checkout-7c9d8b6f5-x2x7k"
    assert throttled[0].value == 9120
    assert throttled[0].timestamp_ms is not None


def test_envoy_stats_prometheus() -> None:
    document = read(RECORDED / "envoy-stats-prometheus.txt")
    result = resources.parse(document)
    by_key = {(sample.name, tuple(sorted(sample.labels.items()))): sample for sample in result.facts}
    connect_fail = by_key[("envoy_cluster_default_svc_cluster_local__upstream_cx_connect_fail",
                           (("envoy_cluster_name", "outbound|9090||dead"),))]

    assert result.problems == []
    assert connect_fail.value == 3
    assert by_key[("envoy_server_memory_allocated", ())].value > 0
    assert any(sample.name.endswith("_bucket") and sample.labels.get("le") == "+Inf" for sample in result.facts)


def test_label_escapes_and_bad_lines() -> None:
    text = ('# TYPE m gauge\nm{path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb"} 1.5e3\n'
            'm{unterminated="x} 1\nm 1 2 3\nm NaN\nm{} +Inf\n')
    result = resources.parse(Document("m.txt", text))
    first = result.facts[0]

    assert first.labels == {"path": "C:\\dir", "quote": 'say "hi"', "nl": "a\nb"}
    assert first.value == 1500.0
    assert [problem.line for problem in result.problems] == [3, 4]
    assert len(result.facts) == 3


def test_sniff_rejects_other_documents() -> None:
    for path in (RECORDED / "envoy-1.40-istio-text-1.24.log", INCIDENT / "kubectl-get-pods-shop.yaml",
                 INCIDENT / "kubectl-events-shop.txt"):
        assert not resources.sniff(read(path)), path.name
