"""Access-log parser tests on corpus captures and Envoy 1.40 recordings."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doctor.model import Document
from doctor.parsers import accesslog

DATA = Path(__file__).resolve().parent.parent / "data"
CORPUS = DATA / "corpus" / "access-logs"
RECORDED = DATA / "recorded"


def read(path: Path) -> Document:
    return Document(str(path), path.read_text())


def parse(path: Path) -> accesslog.ParseResult:
    return accesslog.parse(read(path))


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.log")), ids=lambda path: path.name[:2])
def test_every_corpus_log_parses_cleanly(path: Path) -> None:
    document = read(path)
    result = accesslog.parse(document)

    assert accesslog.sniff(document)
    assert result.kind == accesslog.KIND
    assert result.facts
    assert result.problems == []


def test_pretty_json_entries_span_their_lines() -> None:
    result = parse(CORPUS / "16-istio-json-raw-http-URX-UF-connection-refused-client.log")
    first, second, third = result.facts

    assert (first.line, first.end_line) == (1, 30)
    assert (second.line, third.line) == (31, 61)
    assert first.log_format == "json"
    assert first.response_code == 503
    assert first.response_flags == ("URX", "UF")
    assert first.upstream_transport_failure_reason == "delayed_connect_error:_Connection_refused"
    assert first.upstream_host == "10.244.2.4:8080"
    assert first.direction == "outbound"
    assert first.timestamp == datetime(2025, 12, 22, 17, 9, 54, 276000, tzinfo=timezone.utc)
    assert first.upstream_service_time_ms is None
    assert third.response_flags == ("UH",)
    assert third.upstream_host is None


def test_server_side_json_is_inbound() -> None:
    (entry,) = parse(CORPUS / "10-istio-json-raw-http-upstream-rst-server-503-UC.log").facts

    assert entry.direction == "inbound"
    assert entry.upstream_cluster == "inbound|8080||"
    assert entry.response_flags == ("UC",)
    assert entry.upstream_local_address == "127.0.0.6:33619"


def test_text_overflow_lines_from_fortio() -> None:
    result = parse(CORPUS / "37-istio-1.2x-text-503-UO-overflow-fortio.log")
    overflow = [entry for entry in result.facts if entry.response_flags == ("UO",)]

    assert len(overflow) == 3
    assert overflow[0].response_code_details == "upstream_reset_before_response_started{overflow}"
    assert overflow[0].upstream_host is None
    assert overflow[0].user_agent == "fortio.org/fortio-1.69.5"
    assert overflow[0].route_name == "default"
    assert overflow[0].downstream_remote_address == "10.244.2.30:59002"
    assert result.facts[3].upstream_host == "10.244.1.27:8080"
    assert result.facts[3].duration_ms == 94
    assert result.facts[3].upstream_service_time_ms == 63


def test_upstream_cluster_raw_has_no_stat_suffix() -> None:
    result = parse(CORPUS / "38-istio-1.24plus-text-upstream-cluster-raw-bookinfo.log")

    assert {entry.upstream_cluster for entry in result.facts} == {
        "outbound|9080||details.default.svc.cluster.local",
        "outbound|9080||reviews.default.svc.cluster.local",
    }
    assert {entry.log_format for entry in result.facts} == {"text-1.24"}
    assert "Mozilla/5.0 (Macintosh" in result.facts[0].user_agent


def test_legacy_format_strips_stat_suffix() -> None:
    legacy = parse(RECORDED / "envoy-1.40-istio-text-legacy.log").facts
    raw = parse(RECORDED / "envoy-1.40-istio-text-1.24.log").facts

    assert legacy[0].text.split()[-6].endswith(";")
    assert legacy[0].log_format == "text-legacy"
    assert [entry.upstream_cluster for entry in legacy] == [entry.upstream_cluster for entry in raw]
    assert legacy[3].upstream_cluster == "outbound|9090||dead.default.svc.cluster.local"


def test_recorded_formats_agree() -> None:
    formats = ["istio-text-legacy", "istio-text-1.24", "istio-json", "envoy-default"]
    parsed = {name: parse(RECORDED / f"envoy-1.40-{name}.log").facts for name in formats}

    for name in formats:
        entries = parsed[name]
        assert [entry.response_code for entry in entries] == [200, 200, 404, 503, 503, 0, 0]
        assert [entry.request_id for entry in entries] == [entry.request_id for entry in parsed["istio-json"]]
        assert entries[3].response_flags == ("URX", "UF")
        assert entries[4].response_flags == ("UH",)
    assert parsed["envoy-default"][0].log_format == "text-envoy"
    assert parsed["envoy-default"][0].upstream_cluster is None


def test_tcp_connection_lines() -> None:
    entries = parse(RECORDED / "envoy-1.40-istio-text-1.24.log").facts
    live, dead = entries[5], entries[6]

    assert (live.method, live.path, live.protocol) == (None, None, None)
    assert live.response_code == 0
    assert live.bytes_received == 87
    assert live.direction == "inbound"
    assert dead.response_flags == ("UF", "URX")
    assert dead.upstream_transport_failure_reason == "delayed_connect_error:_Connection_refused"


def test_typed_json_values() -> None:
    entries = parse(RECORDED / "envoy-1.40-istio-json.log").facts

    assert entries[0].upstream_service_time_ms == 1
    assert entries[1].x_forwarded_for == "10.1.2.3"
    assert entries[2].response_code_details == "route_not_found"
    assert entries[2].upstream_cluster is None
    assert entries[2].direction is None


def test_mixed_file_reports_bad_lines() -> None:
    text_line = (RECORDED / "envoy-1.40-istio-text-1.24.log").read_text().splitlines()[3]
    json_line = (RECORDED / "envoy-1.40-istio-json.log").read_text().splitlines()[4]
    pretty = (CORPUS / "29-istio-json-raw-http-200-server-inbound.log").read_text()
    text = "\n".join([
        "2025-01-01T00:00:00.000000Z\tinfo\tEnvoy proxy is ready",
        text_line,
        "",
        json_line,
        text_line[:60],
        '{"broken": ',
        pretty.rstrip(),
        '{"kind": "Pod"}',
    ])
    result = accesslog.parse(Document("mixed.log", text))

    assert [entry.line for entry in result.facts] == [2, 4, 7]
    assert result.facts[2].end_line == 7 + len(pretty.strip().splitlines()) - 1
    assert [problem.line for problem in result.problems] == [1, 5, 6, result.facts[2].end_line + 1]
    assert "fields do not match" in result.problems[1].message
    assert "not valid or not closed" in result.problems[2].message
    assert "without access-log fields" in result.problems[3].message


def test_unclosed_pretty_object_does_not_swallow_next() -> None:
    pretty = (CORPUS / "29-istio-json-raw-http-200-server-inbound.log").read_text().splitlines()
    text = "\n".join(pretty[:5] + pretty)
    result = accesslog.parse(Document("cut.log", text))

    assert [entry.line for entry in result.facts] == [6]
    assert [problem.line for problem in result.problems] == [1, 2, 3, 4, 5]


def test_kubectl_timestamp_prefix_is_allowed() -> None:
    line = (CORPUS / "37-istio-1.2x-text-503-UO-overflow-fortio.log").read_text().splitlines()[0]
    entry = accesslog.parse_line("x.log", 1, "2025-06-01T15:37:04.900000001Z " + line)

    assert entry is not None
    assert entry.response_flags == ("UO",)


def test_sniff_rejects_other_documents() -> None:
    pod = DATA / "cases" / "20-oom-sidecar-memory-limit-many-tcp-services" / "pod.json"
    stats = RECORDED / "envoy-stats-prometheus.txt"

    assert not accesslog.sniff(read(pod))
    assert not accesslog.sniff(read(stats))


def covered_lines(result: accesslog.ParseResult) -> set[int]:
    lines: set[int] = set()
    for entry in result.facts:
        lines.update(range(entry.line, (entry.end_line or entry.line) + 1))
    for problem in result.problems:
        lines.add(problem.line)
    return lines


SAMPLE_LINES = (
    (RECORDED / "envoy-1.40-istio-text-legacy.log").read_text().splitlines()
    + (RECORDED / "envoy-1.40-istio-json.log").read_text().splitlines()[:2]
    + (CORPUS / "29-istio-json-raw-http-200-server-inbound.log").read_text().splitlines()
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=120), st.sampled_from(SAMPLE_LINES)), max_size=40))
def test_parser_accounts_for_every_line(lines: list[str]) -> None:
    text = "\n".join(lines)
    document = Document("random.log", text)

    result = accesslog.parse(document)
    accesslog.sniff(document)

    non_blank = {number for number, line in enumerate(text.splitlines(), start=1) if line.strip()}
    fact_lines = [entry.line for entry in result.facts]
    problem_lines = [problem.line for problem in result.problems]
    assert covered_lines(result) == non_blank
    assert len(set(fact_lines) | set(problem_lines)) == len(fact_lines) + len(problem_lines)
