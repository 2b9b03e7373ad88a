"""Istio resource parser tests on the case files and hand-made variants of them."""

from __future__ import annotations

from pathlib import Path

from doctor.model import Document
from doctor.parsers import envoy_admin, istio
from doctor.parsers.istio import IstioResource

DATA = Path(__file__).resolve().parent.parent / "data"
CASES = DATA / "cases"
CASE_03 = CASES / "03-503-dr-without-istio-mutual-overrides-mtls" / "policy.yaml"
CASE_07 = CASES / "07-403-apirule-gateway-only-principal" / "policy.yaml"
CASE_15_BEFORE = CASES / "15-401-keycloak-issuer-mismatch-jwks-selfsigned" / "policy-before.yaml"
CASE_20_SIDECAR = CASES / "20-oom-sidecar-memory-limit-many-tcp-services" / "sidecar.yaml"
CASE_22 = CASES / "22-429-local-ratelimit-default-bucket-consumed" / "envoyfilter.yaml"


def read(path: Path) -> Document:
    return Document(str(path), path.read_text())


def resources(doc: Document) -> list[IstioResource]:
    return [fact for fact in istio.parse(doc).facts if isinstance(fact, IstioResource)]


def test_sniff_claims_every_case_policy() -> None:
    for path in (CASE_03, CASE_07, CASE_15_BEFORE, CASE_20_SIDECAR, CASE_22):
        assert istio.sniff(read(path)), path


def test_sniff_leaves_other_inputs_alone() -> None:
    others = [
        CASES / "20-oom-sidecar-memory-limit-many-tcp-services" / "pod.json",
        CASES / "12-401-remote-jwks-cluster-missing-tls" / "envoy-excerpt.yaml",
        CASES / "22-429-local-ratelimit-default-bucket-consumed" / "stats.txt",
        DATA / "corpus" / "istioctl" / "10-proxy-status-1.22-output-yaml.yaml",
        DATA / "corpus" / "envoy-admin" / "06-config-dump-rbac-filter-deny-istio-1.24.2.yaml",
    ]
    for path in others:
        assert not istio.sniff(read(path)), path


def test_mesh_policy_reads_as_strict_peer_authentication() -> None:
    mesh_policy, _ = resources(read(CASE_03))

    assert mesh_policy.kind == "PeerAuthentication"
    assert mesh_policy.legacy_kind == "MeshPolicy"
    assert mesh_policy.namespace is None
    assert mesh_policy.spec == {"mtls": {"mode": "STRICT"}}
    assert mesh_policy.original_spec == {"peers": [{"mtls": {}}]}
    assert istio.is_mesh_wide(mesh_policy)


def test_mesh_policy_cites_kind_and_peers_lines() -> None:
    mesh_policy, _ = resources(read(CASE_03))

    assert mesh_policy.kind_line == 2
    assert mesh_policy.text_of(mesh_policy.kind_line) == "kind: MeshPolicy"
    assert mesh_policy.line_of("mtls.mode") == 7
    assert mesh_policy.text_of(7) == "  - mtls: {}"


def test_destination_rule_key_lines() -> None:
    _, rule = resources(read(CASE_03))

    assert rule.kind == "DestinationRule"
    assert rule.namespace == "orders"
    assert rule.spec["host"] == "app"
    assert rule.key_lines["trafficPolicy"] == 16
    assert rule.text_of(16) == "  trafficPolicy:"
    assert "trafficPolicy.tls" not in rule.key_lines
    # A missing key falls back to its nearest ancestor.
    assert rule.line_of("trafficPolicy.tls.mode") == 16
    assert not istio.is_mesh_wide(rule)


def test_authorization_policy_principal_lines() -> None:
    (policy,) = resources(read(CASE_07))

    assert policy.ref == "AuthorizationPolicy observability/seq-apigateway-https-custom"
    assert policy.spec["action"] == "ALLOW"
    path = "rules.0.from.0.source.principals.0"
    assert policy.key_lines[path] == 16
    assert "istio-ingressgateway-service-account" in policy.text_of(policy.key_lines[path])
    assert policy.key_lines["rules.0.from.0.source.principals"] == 15


def test_request_authentication_jwt_rules() -> None:
    (rule,) = resources(read(CASE_15_BEFORE))

    assert rule.kind == "RequestAuthentication"
    assert rule.spec["jwtRules"][0]["jwksUri"].startswith("https://10.0.0.21:30000/")
    assert rule.text_of(rule.key_lines["jwtRules.0.jwksUri"]).strip().startswith("jwksUri:")


def test_envoy_filter_patches_become_rate_limit_facts() -> None:
    facts = istio.parse(read(CASE_22)).facts
    limits = [fact for fact in facts if isinstance(fact, envoy_admin.LocalRateLimit)]
    filter_level, route_level = limits

    assert filter_level.scope == "filter"
    assert filter_level.max_tokens is None
    assert filter_level.listener == "SIDECAR_INBOUND:8080"
    assert route_level.scope == "route"
    assert route_level.route == "inbound|http|8080 ANY"
    assert (route_level.max_tokens, route_level.tokens_per_fill, route_level.fill_interval_s) == (10, 10, 40.0)
    assert route_level.filter_enforced_percent == 100.0
    assert route_level.descriptor_actions == ("request_headers :path -> path",)
    (descriptor,) = route_level.descriptors
    assert descriptor.entries == (("path", "/mesh/bar"),)
    assert descriptor.max_tokens == 1
    assert descriptor.line == 59
    assert descriptor.text == "value: /mesh/bar"


def test_legacy_policy_splits_peers_and_origins() -> None:
    doc = Document("policy.yaml", """\
apiVersion: authentication.istio.io/v1alpha1
kind: Policy
metadata:
  name: default
  namespace: orders
spec:
  targets:
  - name: app
  peers:
  - mtls:
      mode: PERMISSIVE
  origins:
  - jwt:
      issuer: https://issuer.example.com
      jwksUri: https://issuer.example.com/jwks
      jwtHeaders: [x-token]
""")
    peer, request = resources(doc)

    assert (peer.kind, peer.legacy_kind) == ("PeerAuthentication", "Policy")
    assert peer.spec["mtls"] == {"mode": "PERMISSIVE"}
    assert peer.spec["targets"] == [{"name": "app"}]
    assert peer.line_of("mtls.mode") == 11
    assert request.kind == "RequestAuthentication"
    assert request.spec["jwtRules"] == [{
        "issuer": "https://issuer.example.com", "jwksUri": "https://issuer.example.com/jwks",
        "fromHeaders": [{"name": "x-token"}]}]
    assert request.key_lines["jwtRules.0.issuer"] == 14


def test_legacy_policy_without_peers_disables_mtls() -> None:
    doc = Document("policy.yaml", """\
apiVersion: authentication.istio.io/v1alpha1
kind: Policy
metadata: {name: plain, namespace: legacy}
spec:
  targets: [{name: db}]
""")
    (peer,) = resources(doc)

    assert peer.spec["mtls"] == {"mode": "DISABLE"}


def test_role_binding_joins_its_role() -> None:
    doc = Document("rbac.yaml", """\
apiVersion: rbac.istio.io/v1alpha1
kind: ServiceRole
metadata: {name: reader, namespace: shop}
spec:
  rules:
  - services: ["products.shop.svc.cluster.local"]
    methods: ["GET"]
    paths: ["/api/*"]
---
apiVersion: rbac.istio.io/v1alpha1
kind: ServiceRoleBinding
metadata: {name: bind-reader, namespace: shop}
spec:
  subjects:
  - user: "cluster.local/ns/web/sa/frontend"
  - properties:
      source.namespace: "batch"
  roleRef: {kind: ServiceRole, name: reader}
---
apiVersion: rbac.istio.io/v1alpha1
kind: ClusterRbacConfig
metadata: {name: default}
spec:
  mode: 'ON'
""")
    result = istio.parse(doc)
    binding, cluster_config = result.facts

    assert result.problems == []
    assert (binding.kind, binding.legacy_kind) == ("AuthorizationPolicy", "ServiceRoleBinding")
    assert binding.spec["action"] == "ALLOW"
    assert binding.spec["rules"] == [{
        "from": [{"source": {"principals": ["cluster.local/ns/web/sa/frontend"]}},
                 {"source": {"namespaces": ["batch"]}}],
        "to": [{"operation": {"methods": ["GET"], "paths": ["/api/*"]}}]}]
    assert binding.key_lines["rules.0.from.0.source.principals.0"] == 15
    assert (cluster_config.kind, cluster_config.spec, cluster_config.namespace) == ("AuthorizationPolicy", {}, None)


def test_role_binding_without_role_is_a_problem() -> None:
    doc = Document("binding.yaml", """\
apiVersion: rbac.istio.io/v1alpha1
kind: ServiceRoleBinding
metadata: {name: orphan, namespace: shop}
spec:
  subjects: [{user: "*"}]
  roleRef: {kind: ServiceRole, name: missing}
""")
    result = istio.parse(doc)

    assert result.facts[0].spec["rules"] == [{"from": [{"source": {"principals": ["*"]}}]}]
    (problem,) = result.problems
    assert "'missing'" in problem.message
    assert problem.line == 1


def test_unquoted_on_mode_is_yaml_boolean() -> None:
    doc = Document("rbac.yaml", "apiVersion: rbac.istio.io/v1alpha1\nkind: RbacConfig\n"
                                "metadata: {name: default}\nspec: {mode: ON}\n")
    (policy,) = resources(doc)

    assert policy.legacy_kind == "RbacConfig"
    assert policy.spec == {}


def test_rbac_config_off_has_no_policy() -> None:
    doc = Document("rbac.yaml", "apiVersion: rbac.istio.io/v1alpha1\nkind: ClusterRbacConfig\n"
                                "metadata: {name: default}\nspec: {mode: 'OFF'}\n")

    assert istio.sniff(doc)
    assert istio.parse(doc).facts == []


def test_kubectl_json_list_of_policies() -> None:
    doc = Document("list.json", """{
  "apiVersion": "v1",
  "kind": "List",
  "items": [
    {"apiVersion": "security.istio.io/v1beta1", "kind": "PeerAuthentication",
     "metadata": {"name": "default", "namespace": "istio-system"},
     "spec": {"mtls": {"mode": "STRICT"}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app"}}
  ]
}""")
    (peer,) = resources(doc)

    assert peer.spec == {"mtls": {"mode": "STRICT"}}
    assert peer.line == 5
    assert istio.is_mesh_wide(peer)


def test_bad_document_keeps_the_good_ones() -> None:
    doc = Document("mixed.yaml", """\
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: good, namespace: a}
spec:
  host: good
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: bad
spec: [
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
""")
    result = istio.parse(doc)

    assert [fact.name for fact in result.facts] == ["good"]
    (problem,) = result.problems
    assert problem.line is not None and 7 <= problem.line <= 11
    assert "invalid YAML" in problem.message


def test_spec_that_is_not_a_mapping() -> None:
    doc = Document("dr.yaml", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                              "metadata: {name: odd, namespace: a}\nspec: [1, 2]\n")
    result = istio.parse(doc)

    assert result.facts[0].spec == {}
    assert "not a mapping" in result.problems[0].message
    assert result.problems[0].line == 4
