"""Kubernetes pod and event parser tests on case files and kubectl recordings."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from doctor.model import Document
from doctor.parsers import kube

DATA = Path(__file__).resolve().parent.parent / "data"
CASE_20 = DATA / "cases" / "20-oom-sidecar-memory-limit-many-tcp-services"
INCIDENT = DATA / "recorded" / "oom-incident"


def read(path: Path) -> Document:
    return Document(str(path), path.read_text())


def container(pod: kube.PodInfo, name: str) -> kube.ContainerInfo:
    (found,) = [item for item in pod.containers if item.name == name]
    return found


@pytest.mark.parametrize(("text", "expected"), [
    ("128Mi", 134217728), ("1Gi", 1073741824), ("500M", 500_000_000), ("134217728", 134217728),
    ("63488Ki", 65011712), ("1.5Gi", 1610612736), ("1e3", 1000),
])
def test_memory_quantities(text: str, expected: int) -> None:
    assert kube.parse_memory_bytes(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("100m", 100), ("2", 2000), ("0.5", 500), ("250000n", 1), ("187m", 187), (1, 1000),
])
def test_cpu_quantities(text: object, expected: int) -> None:
    assert kube.parse_cpu_millicores(text) == expected


@pytest.mark.parametrize("text", ["", "12 Mi", "Mi", "1.2.3", "128MB", "-"])
def test_invalid_quantity_names_value(text: str) -> None:
    with pytest.raises(ValueError, match="invalid Kubernetes quantity"):
        kube.parse_memory_bytes(text)


def test_case_20_pod_json() -> None:
    document = read(CASE_20 / "pod.json")
    result = kube.parse(document)
    (pod,) = result.facts
    proxy = container(pod, "istio-proxy")

    assert kube.sniff(document)
    assert result.kind == kube.KIND_PODS
    assert result.problems == []
    assert (pod.name, pod.namespace, pod.line) == ("svc-a-5d8f7c9b6-abcde", "istio-test", 1)
    assert proxy.memory_limit_bytes == 128 * 1024 * 1024
    assert proxy.last_state_reason == "OOMKilled"
    assert proxy.last_exit_code == 137
    assert proxy.restart_count == 7
    assert proxy.is_init is False
    assert proxy.line == 14
    assert container(pod, "app").memory_limit_bytes is None


@pytest.mark.parametrize("name", ["kubectl-get-pods-shop.yaml", "kubectl-get-pods-shop.json"])
def test_native_sidecar_pod_list(name: str) -> None:
    path = INCIDENT / name
    result = kube.parse(read(path))
    checkout, frontend = result.facts
    proxy = container(checkout, "istio-proxy")
    lines = path.read_text().splitlines()

    assert result.problems == []
    assert checkout.pod_ip == "127.0.0.27"
    assert checkout.pod_ips == ("127.0.0.27",)
    assert checkout.node_name == "worker-2"
    assert checkout.service_account == "checkout"
    assert checkout.labels["app"] == "checkout"
    assert proxy.is_init and proxy.is_native_sidecar
    assert proxy.memory_limit_bytes == 64 * 1024 * 1024
    assert proxy.cpu_limit_millicores == 200
    assert proxy.state == "waiting"
    assert proxy.state_reason == "CrashLoopBackOff"
    assert proxy.last_state_reason == "OOMKilled"
    assert proxy.last_finished_at is not None and proxy.last_finished_at.tzinfo is not None
    assert "istio-proxy" in "\n".join(lines[proxy.line - 1:proxy.line + 12])
    assert container(checkout, "istio-init").is_native_sidecar is False
    assert container(checkout, "istio-init").state_reason == "Completed"
    assert container(frontend, "istio-proxy").is_init is False
    assert container(frontend, "istio-proxy").memory_limit_bytes == 1024 ** 3
    assert "frontend-6d4b9c8f7-q8w2z" in "\n".join(lines[frontend.line - 1:frontend.line + 12])


def test_yaml_lines_point_at_items() -> None:
    path = INCIDENT / "kubectl-get-pods-shop.yaml"
    lines = path.read_text().splitlines()
    checkout, _ = kube.parse(read(path)).facts
    proxy = container(checkout, "istio-proxy")

    assert lines[checkout.line - 1].startswith("- apiVersion: v1")
    assert lines[proxy.line - 1].strip().startswith("- ")
    assert "OOMKilled" in "\n".join(lines[proxy.line - 1:proxy.line + 12])


def test_events_yaml() -> None:
    result = kube.parse(read(INCIDENT / "kubectl-get-events-shop.yaml"))
    reasons = [event.reason for event in result.facts]
    backoff = result.facts[reasons.index("BackOff")]

    assert result.kind == kube.KIND_EVENTS
    assert result.problems == []
    assert reasons == ["Pulled", "BackOff", "Unhealthy"]
    assert backoff.count == 3
    assert backoff.involved_kind == "Pod"
    assert backoff.involved_name == "checkout-7c9d8b6f5-x2x7k"
    assert backoff.event_type == "Warning"
    assert backoff.first_timestamp is not None and backoff.first_timestamp.tzinfo == timezone.utc


def test_events_table() -> None:
    document = read(INCIDENT / "kubectl-events-shop.txt")
    result = kube.parse(document)
    unhealthy = result.facts[1]

    assert kube.sniff(document)
    assert result.kind == kube.KIND_EVENTS
    assert result.problems == []
    assert [event.reason for event in result.facts] == ["Pulled", "Unhealthy", "BackOff"]
    assert unhealthy.line == 3
    assert unhealthy.count == 4
    assert unhealthy.event_type == "Warning"
    assert unhealthy.involved_name == "checkout-7c9d8b6f5-x2x7k"
    assert unhealthy.message.startswith("Readiness probe failed: Get ")
    assert unhealthy.message.endswith("connect: connection refused")


def test_events_table_reports_misaligned_row() -> None:
    text = (INCIDENT / "kubectl-events-shop.txt").read_text() + "garbage-that-runs-across-every-column-of-the-table\n"
    result = kube.parse(Document("events.txt", text))

    assert len(result.facts) == 3
    assert [problem.line for problem in result.problems] == [5]


def test_bad_quantity_and_other_kinds_are_problems() -> None:
    text = (CASE_20 / "pod.json").read_text().replace('"128Mi"}, "requests"', '"128 MiB"}, "requests"')
    text = '{"kind": "List", "items": [' + text + ', {"kind": "Service", "metadata": {"name": "x"}}]}'
    result = kube.parse(Document("list.json", text))
    (pod,) = result.facts

    assert container(pod, "istio-proxy").memory_limit_bytes is None
    assert len(result.problems) == 2
    assert "'128 MiB'" in result.problems[0].message
    assert "Service is not a Pod or Event" in result.problems[1].message


def test_invalid_yaml_is_a_problem() -> None:
    result = kube.parse(Document("broken.yaml", "kind: Pod\nmetadata:\n  name: [unclosed\n"))

    assert result.facts == []
    assert len(result.problems) == 1
    assert result.problems[0].line is not None


def test_json_the_yaml_loader_rejects() -> None:
    # Python's json.dumps writes an emoji as a surrogate pair escape, which PyYAML rejects.
    text = (INCIDENT / "kubectl-get-pods-shop.json").read_text().replace(
        '"app": "frontend"', '"app": "frontend", "owner": "\\ud83d\\ude00"')
    result = kube.parse(Document("escaped.json", text))
    _, pod = result.facts

    assert result.problems == []
    assert pod.labels["owner"] == "\U0001F600"
    assert '"frontend-6d4b9c8f7-q8w2z"' in text.splitlines()[pod.line - 1]


def test_sniff_rejects_other_documents() -> None:
    sidecar = read(CASE_20 / "sidecar.yaml")
    log = read(DATA / "recorded" / "envoy-1.40-istio-json.log")

    assert not kube.sniff(sidecar)
    assert not kube.sniff(log)


def test_timestamps_are_aware() -> None:
    (pod,) = kube.parse(read(INCIDENT / "kubectl-get-pod-checkout.json")).facts
    proxy = container(pod, "istio-proxy")

    assert proxy.last_finished_at > datetime(2020, 1, 1, tzinfo=timezone.utc)


def test_large_json_list_uses_searched_lines() -> None:
    listing = json.loads((INCIDENT / "kubectl-get-pods-shop.json").read_text())
    listing["items"] = listing["items"] * 600
    text = json.dumps(listing, indent=4)
    result = kube.parse(Document("many.json", text))
    lines = text.splitlines()

    assert len(text) > 2 * 1024 * 1024
    assert len(result.facts) == 1200
    assert result.problems == []
    assert '"checkout-7c9d8b6f5-x2x7k"' in lines[result.facts[1198].line - 1]
    assert '"frontend-6d4b9c8f7-q8w2z"' in lines[result.facts[1199].line - 1]
    assert result.facts[1198].line < result.facts[1199].line
