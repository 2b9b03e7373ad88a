"""Envoy admin parser tests on corpus files, case excerpts and outputs recorded from Envoy 1.40."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from doctor.model import Document
from doctor.parsers import envoy_admin
from doctor.parsers.structured import load_documents
from doctor.parsers.envoy_admin import (
    ClusterHost,
    ClusterStatus,
    EnvoyCertificate,
    EnvoyCluster,
    EnvoyHistogram,
    EnvoyListener,
    EnvoySecret,
    EnvoyStat,
    JwtProvider,
    LocalRateLimit,
    RbacFilter,
)

DATA = Path(__file__).resolve().parent.parent / "data"
CORPUS = DATA / "corpus" / "envoy-admin"
RECORDED = DATA / "recorded" / "envoy-admin"
CASE_12 = DATA / "cases" / "12-401-remote-jwks-cluster-missing-tls" / "envoy-excerpt.yaml"


def read(path: Path) -> Document:
    return Document(str(path), path.read_text())


def facts_of(path: Path, fact_type: type) -> list:
    return [fact for fact in envoy_admin.parse(read(path)).facts if isinstance(fact, fact_type)]


@pytest.mark.parametrize(("path", "kind"), [
    (RECORDED / "stats.txt", envoy_admin.KIND_STATS),
    (RECORDED / "stats-prometheus.txt", envoy_admin.KIND_STATS),
    (RECORDED / "certs.json", envoy_admin.KIND_CERTS),
    (RECORDED / "clusters.txt", envoy_admin.KIND_CLUSTERS),
    (RECORDED / "clusters.json", envoy_admin.KIND_CLUSTERS),
    (RECORDED / "config_dump.json", envoy_admin.KIND_CONFIG_DUMP),
    (CORPUS / "05-config-dump-jwt-authn-filter-istio-1.24.2.yaml", envoy_admin.KIND_CONFIG_DUMP),
    (CORPUS / "06-config-dump-rbac-filter-deny-istio-1.24.2.yaml", envoy_admin.KIND_CONFIG_DUMP),
    (CORPUS / "08-clusters-json-format-istio-1.3-testdata.json", envoy_admin.KIND_CLUSTERS),
    (CORPUS / "09-config-dump-secrets-istio-1.18-expired-default-warming.json", envoy_admin.KIND_CONFIG_DUMP),
    (CORPUS / "10-config-dump-secrets-spire-trust-bundles-istio-1.24.json", envoy_admin.KIND_CONFIG_DUMP),
    (CASE_12, envoy_admin.KIND_CONFIG_DUMP),
])
def test_kind_detected_and_parsed_cleanly(path: Path, kind: str) -> None:
    result = envoy_admin.parse(read(path))

    assert envoy_admin.detect_kind(read(path)) == kind
    assert result.kind == kind
    assert result.facts
    assert result.problems == []


@pytest.mark.parametrize("path", [
    DATA / "cases" / "22-429-local-ratelimit-default-bucket-consumed" / "stats.txt",
    DATA / "cases" / "03-503-dr-without-istio-mutual-overrides-mtls" / "client-curl.txt",
    DATA / "corpus" / "istioctl" / "09-proxy-status-1.22-output-json.json",
    DATA / "corpus" / "istioctl" / "14-proxy-config-secret-1.24-warming.txt",
    RECORDED / "access-inbound.log",
])
def test_other_inputs_not_claimed(path: Path) -> None:
    assert not envoy_admin.sniff(read(path))


def test_stats_counters_and_histograms() -> None:
    facts = envoy_admin.parse(read(RECORDED / "stats.txt")).facts
    stats = {fact.name: fact for fact in facts if isinstance(fact, EnvoyStat)}
    histograms = {fact.name: fact for fact in facts if isinstance(fact, EnvoyHistogram)}

    assert stats["http_local_rate_limiter.http_local_rate_limit.rate_limited"].value == 6
    assert stats["http_local_rate_limiter.http_local_rate_limit.enforced"].value == 4
    assert stats["http.inbound_0.0.0.0_8443.rbac.denied"].value == 2
    assert stats["http.inbound_0.0.0.0_8443.rbac.istio_dry_run_allow_.shadow_denied"].value == 2
    no_chain = [stat for name, stat in stats.items() if name.endswith(".no_filter_chain_match")]
    assert sorted(stat.value for stat in no_chain) == [0, 0, 0, 0, 1]

    histogram = histograms["cluster.outbound|8443||server.default.svc.cluster.local.upstream_rq_time"]
    assert histogram.recorded
    assert histogram.quantiles["P0"] == (None, 0.0)
    assert histogram.quantiles["P100"][1] is not None
    assert len(histogram.quantiles) == 10


def test_stats_text_readouts_are_skipped() -> None:
    facts = envoy_admin.parse(read(RECORDED / "stats.txt")).facts

    assert not [fact for fact in facts if getattr(fact, "name", "").endswith("version_text")]


def test_prometheus_labels_and_types() -> None:
    stats = facts_of(RECORDED / "stats-prometheus.txt", EnvoyStat)
    by_key = {(stat.name, tuple(sorted(stat.labels.items()))): stat for stat in stats}

    limited = by_key[("envoy_http_local_rate_limit_rate_limited",
                      (("envoy_local_http_ratelimit_prefix", "http_local_rate_limiter"),))]
    assert limited.value == 6
    assert limited.stat_type == "counter"
    buckets = [stat for stat in stats if stat.name.endswith("_bucket")]
    assert buckets and all(stat.stat_type == "histogram" for stat in buckets)
    assert all("le" in stat.labels for stat in buckets)


def test_prometheus_from_other_recording() -> None:
    stats = facts_of(DATA / "recorded" / "envoy-stats-prometheus.txt", EnvoyStat)

    assert any(stat.name == "envoy_cluster_upstream_cx_connect_fail" for stat in stats)


def test_certs_from_admin() -> None:
    certificates = facts_of(RECORDED / "certs.json", EnvoyCertificate)
    leaves = [cert for cert in certificates if not cert.is_ca]

    assert {san for cert in leaves for san in cert.subject_alt_names} == {
        "spiffe://cluster.local/ns/default/sa/server",
        "spiffe://cluster.local/ns/default/sa/frontend",
        "spiffe://cluster.local/ns/team-b/sa/default",
    }
    for cert in certificates:
        assert cert.expiration_time is not None and cert.expiration_time.tzinfo is not None
        assert cert.valid_from is not None and cert.valid_from < cert.expiration_time
        assert cert.days_until_expiration is not None
        assert cert.path == "<inline>"
        assert cert.text.startswith('"serial_number"')


def test_clusters_text_hosts_and_thresholds() -> None:
    facts = envoy_admin.parse(read(RECORDED / "clusters.txt")).facts
    statuses = {fact.name: fact for fact in facts if isinstance(fact, ClusterStatus)}
    hosts = {fact.cluster: fact for fact in facts if isinstance(fact, ClusterHost)}

    down = hosts["outbound|9090||down.default.svc.cluster.local"]
    assert down.stats["cx_connect_fail"] == 1
    assert down.health_flags == ("healthy",)
    assert down.healthy
    assert down.text.endswith("::health_flags::healthy")
    assert down.stat_lines["cx_connect_fail"] < down.line
    thresholds = {item.priority: item for item in statuses["outbound|9090||down.default.svc.cluster.local"].thresholds}
    assert thresholds["default_priority"].max_connections == 1
    assert thresholds["default_priority"].max_pending_requests == 1
    assert thresholds["high_priority"].max_connections == 1024
    assert statuses["outbound|9090||down.default.svc.cluster.local"].added_via_api is False


def test_clusters_text_failure_flags_and_ipv6() -> None:
    doc = Document("clusters.txt", "\n".join([
        "outbound|80||web::observability_name::outbound|80||web",
        "outbound|80||web::default_priority::max_connections::1024",
        "outbound|80||web::[fd00::1]:8080::cx_connect_fail::12",
        "outbound|80||web::[fd00::1]:8080::health_flags::/failed_outlier_check/failed_active_hc",
    ]))
    (host,) = [fact for fact in envoy_admin.parse(doc).facts if isinstance(fact, ClusterHost)]

    assert host.address == "[fd00::1]:8080"
    assert host.health_flags == ("failed_outlier_check", "failed_active_hc")
    assert not host.healthy
    assert host.line == 4


def test_clusters_json_recorded_and_corpus() -> None:
    recorded = {host.cluster: host for host in facts_of(RECORDED / "clusters.json", ClusterHost)}
    corpus = facts_of(CORPUS / "08-clusters-json-format-istio-1.3-testdata.json", ClusterHost)

    assert recorded["outbound|9090||down.default.svc.cluster.local"].stats["cx_connect_fail"] == 1
    outlier = [host for host in corpus if "failed_outlier_check" in host.health_flags]
    assert outlier
    (busy,) = [host for host in corpus if host.stats.get("cx_connect_fail") == 64]
    assert busy.cluster == "inbound_9092"
    assert busy.stats["cx_active"] == 8


def test_config_dump_listeners_and_chains() -> None:
    listeners = {item.name: item for item in facts_of(RECORDED / "config_dump.json", EnvoyListener)}
    inbound = listeners["virtualInbound"]
    (chain,) = inbound.filter_chains

    assert inbound.state == "static"
    assert chain.transport_protocol == "tls"
    assert chain.has_tls
    assert chain.require_client_certificate is True
    assert chain.certificate_secrets == ("default",)
    assert chain.http_filters == ("envoy.filters.http.jwt_authn", "envoy.filters.http.rbac",
                                  "envoy.filters.http.rbac", "envoy.filters.http.local_ratelimit",
                                  "envoy.filters.http.router")
    assert not listeners["outbound_frontend"].filter_chains[0].has_tls


def test_config_dump_clusters_tls_and_breakers() -> None:
    clusters = {item.name: item for item in facts_of(RECORDED / "config_dump.json", EnvoyCluster)}
    server = clusters["outbound|8443||server.default.svc.cluster.local"]
    jwks = clusters["outbound|443||idp.example.com"]

    assert len(clusters) == 7
    assert server.has_tls
    assert server.sni == "outbound_.8443_._.server.default.svc.cluster.local"
    assert server.certificate_secrets == ("frontend",)
    assert server.validation_secret == "ROOTCA"
    assert server.san_matchers == ("exact:spiffe://cluster.local/ns/default/sa/server",)
    assert server.thresholds[0].max_retries == 3
    assert server.thresholds[0].text.startswith('"max_connections"')
    assert server.outlier_detection["consecutive_5xx"] == 5
    assert not jwks.has_tls
    assert jwks.text == '"name": "outbound|443||idp.example.com",'


def test_config_dump_jwt_providers() -> None:
    providers = {item.name: item for item in facts_of(RECORDED / "config_dump.json", JwtProvider)}

    assert providers["origins-0"].local_jwks_kids == ("recorded-key-1",)
    assert providers["origins-0"].issuer == "testing@secure.istio.io"
    assert providers["origins-1"].remote_jwks_uri == "https://idp.example.com/.well-known/jwks.json"
    assert providers["origins-1"].remote_jwks_cluster == "outbound|443||idp.example.com"
    assert providers["origins-1"].audiences == ("orders-api",)
    assert providers["origins-1"].allow_missing
    assert providers["origins-1"].listener == "virtualInbound"


def test_config_dump_rbac_filters() -> None:
    deny, allow = facts_of(RECORDED / "config_dump.json", RbacFilter)

    assert deny.action == "DENY"
    assert [policy.name for policy in deny.policies] == ["ns[default]-policy[deny-admin]-rule[0]"]
    assert deny.policies[0].permissions == ("((path exact:/admin))",)
    assert deny.policies[0].any_principal
    assert allow.action == "ALLOW"
    frontend = allow.policies[0]
    assert frontend.peer_principals == (("exact", "spiffe://cluster.local/ns/default/sa/frontend"),)
    assert not frontend.any_principal
    assert frontend.text == '"ns[default]-policy[allow-frontend]-rule[0]": {'
    assert allow.shadow_action == "DENY"
    assert allow.shadow_policies[0].peer_principals == (("regex", ".*/ns/team-b/.*"),)
    assert allow.shadow_rules_stat_prefix == "istio_dry_run_allow_"


def test_config_dump_local_rate_limits() -> None:
    limits = facts_of(RECORDED / "config_dump.json", LocalRateLimit)
    by_route = {limit.route: limit for limit in limits}

    assert len(limits) == 3
    assert by_route[None].scope == "filter"
    assert by_route[None].enabled_percent == 0.0
    limited = by_route["limited"]
    assert (limited.max_tokens, limited.fill_interval_s) == (5, 60.0)
    assert limited.descriptors[0].entries == (("path", "/limited/bar"),)
    assert limited.descriptor_actions == ("request_headers :path -> path",)
    assert not limited.shadow_mode
    shadow = by_route["shadow"]
    assert shadow.filter_enabled_percent == 100.0
    assert shadow.filter_enforced_percent == 0.0
    assert shadow.shadow_mode


def test_config_dump_secrets_static_and_warming() -> None:
    secrets = {item.name: item for item in facts_of(RECORDED / "config_dump.json", EnvoySecret)}
    warming = secrets["spiffe://cluster.local/ns/default/sa/missing"]

    assert warming.state == "warming"
    assert warming.secret_type is None
    assert warming.version_info == "uninitialized"
    leaf, root = secrets["default"].certificates
    assert leaf.subject_alt_names == ("spiffe://cluster.local/ns/default/sa/server",)
    assert root.is_ca
    assert secrets["ROOTCA"].secret_type == "validation_context"
    assert "[redacted]" not in repr(secrets)


def test_corpus_secrets_expired_and_warming() -> None:
    default, rootca, warming = facts_of(CORPUS / "09-config-dump-secrets-istio-1.18-expired-default-warming.json",
                                        EnvoySecret)

    assert (default.state, rootca.state, warming.state) == ("active", "active", "warming")
    leaf = default.certificates[0]
    assert leaf.not_after == datetime(2023, 5, 16, 1, 32, 52, tzinfo=timezone.utc)
    assert leaf.serial_number == "6fbee254c22900615cb1f74e3d2f1713"
    assert rootca.certificates[0].serial_number == "0193a543fe2b0d9cd4847675394dfc54"
    assert warming.name == "configmap://some/thing"
    assert warming.line == 38


def test_corpus_spiffe_trust_bundles() -> None:
    default, rootca = facts_of(CORPUS / "10-config-dump-secrets-spire-trust-bundles-istio-1.24.json", EnvoySecret)

    assert [cert.trust_domain for cert in rootca.certificates] == ["east.local", "west.local"]
    assert all(cert.is_ca for cert in rootca.certificates)
    assert default.certificates[0].serial_number == "cd4902e499169b11ec171dad1668adbb"


def test_corpus_istioctl_yaml_excerpts() -> None:
    (provider,) = facts_of(CORPUS / "05-config-dump-jwt-authn-filter-istio-1.24.2.yaml", JwtProvider)
    (rbac,) = facts_of(CORPUS / "06-config-dump-rbac-filter-deny-istio-1.24.2.yaml", RbacFilter)

    assert provider.name == "origins-0"
    assert provider.local_jwks_kids == ("DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ",)
    assert provider.allow_missing
    assert provider.line == 6
    assert rbac.action == "DENY"
    assert rbac.policies[0].name == "ns[default]-policy[server-a]-rule[0]"
    assert rbac.policies[0].line == 7


def test_case_12_jwks_cluster_without_tls() -> None:
    (provider,) = facts_of(CASE_12, JwtProvider)
    (cluster,) = facts_of(CASE_12, EnvoyCluster)

    assert provider.remote_jwks_uri == "https://example-tenant.eu.auth0.com/.well-known/jwks.json"
    assert provider.remote_jwks_cluster == "auth0"
    assert provider.remote_jwks_line == 7
    assert cluster.name == "auth0"
    assert cluster.line == 13
    assert not cluster.has_tls
    assert cluster.endpoints == ("example-tenant.eu.auth0.com:443",)


def test_camel_case_cluster_with_tls() -> None:
    doc = Document("cluster.json", """[{
  "name": "outbound|443||api.example.com",
  "type": "STRICT_DNS",
  "connectTimeout": "10s",
  "transportSocket": {
    "name": "envoy.transport_sockets.tls",
    "typedConfig": {
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
      "sni": "api.example.com"
    }
  }
}]""")
    documents, errors = load_documents(doc.text)
    (cluster,) = envoy_admin.extract_clusters(documents[0].data, doc.source, doc.text.splitlines())

    assert errors == []

    assert cluster.has_tls
    assert cluster.sni == "api.example.com"
    assert cluster.connect_timeout_s == 10.0


def test_invalid_inline_jwks_is_reported() -> None:
    doc = Document("jwt.yaml", """\
providers:
  broken:
    issuer: https://issuer.example.com
    local_jwks:
      inline_string: '{"keys": []}'
""")
    (provider,) = [fact for fact in envoy_admin.parse(doc).facts if isinstance(fact, JwtProvider)]

    assert provider.local_jwks_error == "local_jwks has no keys"
    assert provider.local_jwks_kids == ()


def test_truncated_config_dump_is_a_problem() -> None:
    text = (RECORDED / "config_dump.json").read_text()[:5000]
    result = envoy_admin.parse(Document("truncated.json", text))

    assert result.kind == envoy_admin.KIND_CONFIG_DUMP
    assert result.problems
    assert result.problems[0].line is not None
