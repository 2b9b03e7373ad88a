"""istioctl parser tests on the corpus proxy-status layouts, secret tables and Istio's own fixtures."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from doctor.model import Document
from doctor.parsers import istioctl
from doctor.parsers.envoy_admin import EnvoyCluster
from doctor.parsers.istioctl import AnalyzeMessage, ClusterSummary, EndpointStatus, ProxySyncStatus, SecretStatus

DATA = Path(__file__).resolve().parent.parent / "data"
CORPUS = DATA / "corpus" / "istioctl"
EXTERNAL = DATA / "external" / "istioctl"


def read(path: Path) -> Document:
    return Document(str(path), path.read_text())


def parse(path: Path) -> list:
    result = istioctl.parse(read(path))
    assert result.problems == [], result.problems
    return result.facts


def by_proxy(path: Path) -> dict[str, ProxySyncStatus]:
    return {fact.proxy: fact for fact in parse(path)}


@pytest.mark.parametrize("name", [
    "01-proxy-status-2018-pilot-version.txt",
    "02-proxy-status-1.1-stale-durations.txt",
    "03-proxy-status-1.3-pilot-column.txt",
    "04-proxy-status-1.7-istiod-column.txt",
    "05-proxy-status-1.13-cluster-column.txt",
    "06-proxy-status-1.18-ecds-ignored.txt",
    "08-proxy-status-1.22-verbose.txt",
    "09-proxy-status-1.22-output-json.json",
    "10-proxy-status-1.22-output-yaml.yaml",
])
def test_every_layout_shows_proxy1_cds_stale(name: str) -> None:
    proxy1 = by_proxy(CORPUS / name)["proxy1"]

    assert istioctl.detect_kind(read(CORPUS / name)) == istioctl.KIND_PROXY_STATUS
    assert proxy1.sync["CDS"] == "STALE"
    assert proxy1.sync["LDS"] == "SYNCED"
    assert proxy1.sync["RDS"] == "NOT SENT"
    assert {"CDS": "STALE", "RDS": "NOT SENT"}.items() <= proxy1.not_synced.items()
    assert "LDS" not in proxy1.not_synced
    assert proxy1.istiod is not None
    assert proxy1.version is not None


def test_2018_layout_percentages() -> None:
    proxies = by_proxy(CORPUS / "01-proxy-status-2018-pilot-version.txt")

    assert proxies["proxy1"].sync_details == {"EDS": "100%"}
    assert proxies["proxy2"].sync["EDS"] == "STALE"
    assert proxies["proxy2"].sync_details == {"EDS": "0%"}
    assert proxies["proxy1"].istiod == "pilot1"
    assert proxies["proxy1"].cluster is None


def test_stale_durations_and_never_acknowledged() -> None:
    proxies = by_proxy(CORPUS / "02-proxy-status-1.1-stale-durations.txt")

    assert proxies["proxy1"].sync_details["CDS"] == "1h0m0s"
    assert proxies["proxy2"].sync_details["EDS"] == "1h0m0s 0%"
    assert proxies["proxy3"].sync_details["CDS"] == "Never Acknowledged"
    assert proxies["proxy3"].sync["LDS"] == "NOT SENT"
    assert proxies["proxy3"].line == 4
    assert proxies["proxy3"].text.startswith("proxy3     STALE (Never Acknowledged)")


def test_renamed_and_added_columns() -> None:
    istiod = by_proxy(CORPUS / "04-proxy-status-1.7-istiod-column.txt")
    cluster = by_proxy(CORPUS / "05-proxy-status-1.13-cluster-column.txt")

    assert istiod["proxy2"].istiod == "istiod2"
    assert cluster["proxy2"].cluster == "cluster2"
    assert cluster["proxy2"].sync["EDS"] == "STALE"


def test_ignored_proxy_counts_as_synced() -> None:
    proxy4 = by_proxy(CORPUS / "06-proxy-status-1.18-ecds-ignored.txt")["proxy4"]

    assert set(proxy4.sync.values()) == {"IGNORED"}
    assert proxy4.not_synced == {}
    assert "ECDS" in proxy4.sync


def test_subscribed_types_layout_has_no_states() -> None:
    proxies = by_proxy(CORPUS / "07-proxy-status-1.22-subscribed-types.txt")

    assert proxies["proxy1"].subscribed_types == ("CDS", "LDS", "EDS", "RDS", "ECDS")
    assert proxies["proxy4"].subscribed_types == ()
    assert proxies["proxy1"].sync == {}
    assert proxies["proxy2"].version == "1.19"


def test_client_config_json_names_istiod() -> None:
    proxy1 = by_proxy(CORPUS / "09-proxy-status-1.22-output-json.json")["proxy1"]
    from_yaml = by_proxy(CORPUS / "10-proxy-status-1.22-output-yaml.yaml")["proxy1"]

    assert proxy1.istiod == "istiod1"
    assert proxy1.cluster == "cluster1"
    assert proxy1.version == "1.20"
    assert proxy1.sync == from_yaml.sync
    assert proxy1.line == 7
    assert from_yaml.line == 17


def test_secret_table_warming_and_expired() -> None:
    warming, default, root = parse(CORPUS / "14-proxy-config-secret-1.24-warming.txt")

    assert isinstance(warming, SecretStatus)
    assert (warming.resource_name, warming.secret_type, warming.status) == ("configmap://some/thing", None, "WARMING")
    assert warming.valid_cert is False
    assert default.secret_type == "Cert Chain"
    assert default.valid_cert is False
    assert default.not_after == datetime(2023, 5, 16, 1, 32, 52, tzinfo=timezone.utc)
    assert root.secret_type == "CA"
    assert root.serial_number == "0193a543fe2b0d9cd4847675394dfc54"


def test_secret_table_trust_domains() -> None:
    rows = parse(CORPUS / "15-proxy-config-secret-spire-trust-domain.txt")

    assert [row.trust_domain for row in rows] == ["east.local", "east.local", "west.local"]
    assert rows[0].valid_cert is False
    assert rows[2].valid_cert is True


def test_cluster_table_with_destination_rule() -> None:
    result = istioctl.parse(read(EXTERNAL / "proxy-config-cluster-istio-docs-destination-rule.txt"))
    rows = {row.cluster_name: row for row in result.facts}

    details = rows["outbound|9080||details.default.svc.cluster.local"]
    assert isinstance(details, ClusterSummary)
    assert details.destination_rule == "details.default"
    assert details.cluster_type == "EDS"
    assert rows["BlackHoleCluster"].port is None
    assert rows["outbound|9080||reviews.default.svc.cluster.local"].destination_rule is None
    # The documentation elides rows with "...": reported, not silently dropped.
    (problem,) = result.problems
    assert problem.line == 17


def test_cluster_table_before_destination_rule_column() -> None:
    policy, xds = parse(EXTERNAL / "proxy-config-cluster-summary-golden.txt")

    assert policy.cluster_name == "outbound|15004||istio-policy.istio-system.svc.cluster.local"
    assert policy.destination_rule is None
    assert xds.cluster_type == "STRICT_DNS"


def test_cluster_json_list() -> None:
    (cluster,) = parse(EXTERNAL / "proxy-config-cluster-json-golden.json")

    assert isinstance(cluster, EnvoyCluster)
    assert cluster.name == "outbound|15004||istio-policy.istio-system.svc.cluster.local"
    assert cluster.cluster_type == "EDS"
    assert cluster.thresholds[0].max_requests == 10000
    assert cluster.connect_timeout_s == 1.0
    assert not cluster.has_tls


def test_analyze_json_messages() -> None:
    messages = parse(EXTERNAL / "analyze-1.14-output-json.json")

    assert istioctl.detect_kind(read(EXTERNAL / "analyze-1.14-output-json.json")) == istioctl.KIND_ANALYZE
    assert [message.code for message in messages] == ["IST0102", "IST0102", "IST0118"]
    last = messages[-1]
    assert isinstance(last, AnalyzeMessage)
    assert last.level == "Info"
    assert last.origin == "Service argo-rollouts/argo-rollouts-metrics"
    assert last.documentation_url.endswith("/ist0118/?ref=istioctl-analyze")
    assert last.line == 17


def test_command_echo_before_header() -> None:
    doc = Document("ps.txt", "$ istioctl proxy-status\n"
                             + (CORPUS / "04-proxy-status-1.7-istiod-column.txt").read_text())
    rows = istioctl.parse(doc).facts

    assert [row.proxy for row in rows] == ["proxy1", "proxy2", "proxy3"]
    assert rows[0].line == 3


def test_misaligned_row_is_a_problem() -> None:
    text = (CORPUS / "04-proxy-status-1.7-istiod-column.txt").read_text().splitlines()
    text.append("proxy4 STALE SYNCED SYNCED SYNCED istiod4 1.1")
    result = istioctl.parse(Document("ps.txt", "\n".join(text)))

    assert [row.proxy for row in result.facts] == ["proxy1", "proxy2", "proxy3"]
    (problem,) = result.problems
    assert problem.line == 6


def test_endpoint_tables() -> None:
    locality = parse(CORPUS / "16-proxy-config-endpoint-1.2x-locality.txt")
    outlier = parse(EXTERNAL / "proxy-config-endpoint-istio-docs-outlier-check.txt")

    assert all(isinstance(row, EndpointStatus) for row in locality + outlier)
    assert len(locality) == 36
    socket = next(row for row in locality if row.cluster == "sds-grpc")
    assert socket.address == "./var/run/secrets/workload-spiffe-uds/socket"
    assert socket.status == "HEALTHY"
    assert socket.locality is None
    assert socket.outlier_check is None
    assert [row.outlier_check for row in outlier] == ["OK", "OK", "OK"]
    assert outlier[2].address == "172.17.0.5:9080"
    assert outlier[2].cluster == "outbound|9080||reviews.default.svc.cluster.local"


@pytest.mark.parametrize("path", [
    DATA / "recorded" / "envoy-admin" / "clusters.txt",
    DATA / "cases" / "17-tls-istio-selfsigned-root-ca-expired" / "secrets.txt",
])
def test_other_tables_not_claimed(path: Path) -> None:
    assert not istioctl.sniff(read(path))
