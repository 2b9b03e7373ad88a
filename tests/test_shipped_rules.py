"""The shipped rules, signatures and playbooks load, link up and cover the matrix."""

from __future__ import annotations

import networkx as nx
import pytest

from doctor.playbooks import check_playbook_links, load_playbooks
from doctor.scan import load_engine

# The troubleshooting matrix: every cause an on-call engineer needs named.
MATRIX = {
    "http-503": ["upstream-connect-failure", "circuit-breaker-overflow", "no-healthy-upstream",
                 "outlier-ejection", "dr-tls-mode-conflict", "plaintext-to-strict",
                 "sidecar-oom-killed", "upstream-app-down", "stale-proxy-config"],
    "http-403": ["rbac-principal-mismatch", "rbac-no-allow-matched", "rbac-deny-matched",
                 "rbac-principals-without-mtls", "jwt-audience-mismatch",
                 "jwt-missing-request-principals"],
    "http-401": ["jwt-expired", "jwt-not-yet-valid", "jwt-issuer-not-configured",
                 "jwt-kid-not-in-jwks", "jwks-fetch-failed", "jwt-missing", "clock-drift"],
    "tls-handshake-failure": ["cert-expired", "unknown-ca", "san-mismatch",
                              "plaintext-against-tls", "sds-secret-not-supplied"],
    "http-429": ["local-rate-limit-exhausted", "local-rate-limit-shadow-mode"],
    "container-exit-137": ["sidecar-oom-killed", "proxy-memory-limit-too-low"],
    "tail-latency": ["sidecar-cpu-throttling", "mtu-blackhole"],
}


@pytest.fixture(scope="module")
def engine():
    return load_engine()


@pytest.fixture(scope="module")
def playbooks():
    return load_playbooks()


def test_every_cause_has_playbook(engine, playbooks):
    problems = check_playbook_links(engine.rulebook, playbooks)

    assert problems == [], "\n".join(str(problem) for problem in problems)


@pytest.mark.parametrize("symptom_id", sorted(MATRIX))
def test_matrix_causes_reachable(engine, symptom_id):
    graph = engine.rulebook.graph

    reachable = nx.descendants(graph, symptom_id)
    missing = [cause for cause in MATRIX[symptom_id] if cause not in reachable]

    assert missing == []


def test_every_check_is_used(engine):
    book = engine.rulebook
    used = {symptom.detect.check_id for symptom in book.symptoms.values()}
    for cause in book.causes.values():
        used.update(ref.check_id for ref in cause.confirm + cause.rule_out)

    unused = sorted(set(engine.registry.ids()) - used)

    assert unused == []


def test_every_signature_names_known_causes(engine):
    book = engine.rulebook

    assert book.signatures
    for signature in book.signatures:
        # A signature without a symptom is evidence for its causes only.
        assert signature.symptom is None or signature.symptom in book.symptoms, signature.id
        assert all(cause in book.causes for cause in signature.causes), signature.id


def test_rules_reference_in_sync(engine, playbooks):
    from pathlib import Path

    from doctor.rules_doc import render_rules_markdown

    page = Path(__file__).parent.parent / "docs" / "rules.md"
    expected = render_rules_markdown(engine.rulebook, playbooks)

    assert page.read_text(encoding="utf-8") == expected, (
        "docs/rules.md is out of date; run `mesh-doctor rules --markdown > docs/rules.md`")
