"""The streaming access-log summary against the tolerant parser, on recorded logs."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doctor import logscan, logstats
from doctor.cli import ExitCode, main
from doctor.logscan import Batch, row_from_entry
from doctor.model import Document
from doctor.parsers import accesslog

ROOT = Path(__file__).resolve().parent
CORPUS = sorted((ROOT / "data" / "corpus" / "access-logs").glob("*.log"))
RECORDED = sorted((ROOT / "data" / "recorded").glob("*.log")) + \
    sorted((ROOT / "data" / "recorded" / "envoy-local-replies").glob("access-*.log")) + \
    [ROOT / "data" / "recorded" / "oom-incident" / "frontend-istio-proxy-access.log"]
LOG_FILES = CORPUS + RECORDED
CORPUS_LINES = [line for path in LOG_FILES
                for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
TEXT_LINE = (ROOT / "data" / "recorded" / "envoy-1.40-istio-text-1.24.log").read_text(
    encoding="utf-8").splitlines()[3]
JSON_LINE = (ROOT / "data" / "recorded" / "envoy-1.40-istio-json.log").read_text(
    encoding="utf-8").splitlines()[3]
# Characters `str.splitlines` breaks a line on; the file reader splits on `\n` only.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def reference_batch(source: str, text: str) -> Batch:
    """Count a document the slow way: every entry the tolerant parser reads."""
    batch = Batch()
    result = accesslog.parse(Document(source, text))
    for entry in result.facts:
        batch.add_row(row_from_entry(entry), (None, None))
    batch.problems.extend(result.problems)
    return batch


def fast_batch(source: str, text: str) -> Batch:
    batch, consumed = logscan.scan_text(source, 1, text, final=True)
    assert consumed == text.count("\n") + 1
    return batch


def assert_same(batch: Batch, reference: Batch) -> None:
    assert batch.entries == reference.entries
    assert batch.counts == reference.counts
    assert batch.kinds == reference.kinds
    assert batch.paths == reference.paths
    assert batch.callers == reference.callers
    assert batch.upstream_hosts == reference.upstream_hosts
    assert [(problem.line, problem.message) for problem in batch.problems] == \
        [(problem.line, problem.message) for problem in reference.problems]


@st.composite
def mutated_lines(draw) -> str:
    line = draw(st.sampled_from(CORPUS_LINES + [TEXT_LINE, JSON_LINE]))
    action = draw(st.sampled_from(["keep", "insert", "delete", "truncate", "replace"]))
    if action == "keep" or not line:
        return line
    position = draw(st.integers(0, len(line) - 1))
    character = draw(st.sampled_from(
        list(' "-[]{}:,\\\t\x0b\x1f\xa0\u2003') + [draw(st.characters(blacklist_characters=LINE_BREAKS,
                                                                      blacklist_categories=("Cs",)))]))
    if action == "insert":
        return line[:position] + character + line[position:]
    if action == "delete":
        return line[:position] + line[position + 1:]
    if action == "truncate":
        return line[:position]
    return line[:position] + character + line[position + 1:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated_lines(), min_size=1, max_size=12))
def test_fast_path_agrees_with_parser(lines):
    lines = [line for line in lines if not any(mark in line for mark in LINE_BREAKS)]
    text = "\n".join(lines)

    assert_same(fast_batch("mixed.log", text), reference_batch("mixed.log", text))


def test_every_corpus_line_agrees():
    rows = list(logscan.iter_rows(CORPUS_LINES))
    fast = 0
    for number, (line, row) in enumerate(zip(CORPUS_LINES, rows), start=1):
        if row is None:
            continue
        fast += 1
        entry = accesslog.parse_line("<lines>", number, line)
        assert entry is not None, line
        assert row == row_from_entry(entry), line

    assert fast >= 100  # TEXT lines and Envoy's compact JSON take the fast path


@pytest.mark.parametrize("path", LOG_FILES, ids=lambda path: path.name)
def test_file_summary_matches_reference(path):
    summary = logstats.analyze_files([path])
    reference = reference_batch(str(path), path.read_text(encoding="utf-8"))

    assert summary.entries == reference.entries
    assert summary.counts == Counter(reference.counts)
    assert summary.malformed == len(reference.problems)
    assert summary.failures == sum(span.count for span in reference.kinds.values())
    assert summary.files[0].method == "full-read"
    assert summary.files[0].bytes_read == path.stat().st_size


def test_corpus_reference_counts():
    summary = logstats.analyze_files(LOG_FILES)
    codes = Counter()
    flags = Counter()
    for path in LOG_FILES:
        for entry in accesslog.parse(Document(str(path), path.read_text(encoding="utf-8"))).facts:
            codes[entry.response_code] += 1
            flags[entry.response_flags] += 1

    assert summary.totals("response_code") == codes
    assert summary.totals("response_flags") == flags
    assert summary.entries == sum(codes.values())


def test_failure_kind_first_and_last():
    path = ROOT / "data" / "corpus" / "access-logs" / "14-istio-json-raw-http-UH-outlier-ejection-client.log"
    summary = logstats.analyze_files([path])
    kinds = {(kind.response_code, kind.response_flags): kind for kind in summary.failure_kinds()}

    no_healthy = kinds[(503, ("UH",))]
    assert no_healthy.count == 3
    assert no_healthy.first.line == 151
    assert no_healthy.last.line == 211
    assert no_healthy.response_code_details == "no_healthy_upstream"
    assert kinds[(503, ())].count == 5


def test_malformed_lines_have_location(tmp_path):
    lines = (ROOT / "data" / "recorded" / "envoy-1.40-istio-text-1.24.log").read_text(
        encoding="utf-8").splitlines()
    lines.insert(2, "2026-12-04T20:18:04Z upstream went away")
    lines.insert(5, lines[4][:60])
    path = tmp_path / "access.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    summary = logstats.analyze_files([path])

    assert summary.malformed == 2
    assert [problem.line for problem in summary.problems] == [3, 6]
    assert "truncated or custom format" in summary.problems[1].message
    assert summary.entries == 7


def test_gzip_reads_like_plain(tmp_path):
    source = ROOT / "data" / "recorded" / "envoy-local-replies" / "access-istio-json.log"
    packed = tmp_path / "access.log.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))

    plain = logstats.analyze_files([source])
    unpacked = logstats.analyze_files([packed])

    assert unpacked.files[0].compressed
    assert unpacked.counts == plain.counts
    assert unpacked.entries == plain.entries > 0


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_pretty_json_across_chunks(tmp_path, monkeypatch, processes):
    text = "".join(path.read_text(encoding="utf-8") for path in CORPUS)
    path = tmp_path / "pretty.log"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(logstats, "CHUNK_BYTES", 700)

    summary = logstats.analyze_files([path], processes=processes)
    reference = reference_batch(str(path), text)

    assert summary.entries == reference.entries
    assert summary.counts == Counter(reference.counts)
    assert summary.failures == sum(kind.count for kind in summary.kinds.values())
    assert summary.failing_paths.counts == reference.paths
    assert summary.malformed == len(reference.problems)


def _timed_log(path: Path, count: int, halves_swapped: bool = False) -> list[str]:
    """Write `count` copies of a recorded TEXT line, one every 100 ms.

    With `halves_swapped` the newer half comes first, as when two rotated
    files are joined in the wrong order.
    """
    start = datetime(2026, 12, 4, 8, 0, tzinfo=timezone.utc)
    lines = []
    for index in range(count):
        moment = start + timedelta(milliseconds=100 * index)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        line = "[" + stamp + TEXT_LINE[TEXT_LINE.index("]"):]
        lines.append(line if index % 7 else line.replace(" 503 ", " 429 ", 1))
    if halves_swapped:
        lines = lines[count // 2:] + lines[:count // 2]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def test_window_seeks_by_binary_search(tmp_path):
    path = tmp_path / "access.log"
    _timed_log(path, 20_000)
    start = datetime(2026, 12, 4, 8, 20, tzinfo=timezone.utc)
    end = datetime(2026, 12, 4, 8, 25, tzinfo=timezone.utc)

    seeked = logstats.analyze_files([path], start=start, end=end)
    everything = logstats.analyze_files([path])

    report = seeked.files[0]
    assert report.method == "binary-search"
    assert report.bytes_read < path.stat().st_size / 2
    assert seeked.entries == 3000  # 10 entries a second for 5 minutes
    inside = {key: count for key, count in everything.counts.items()
              if "2026-12-04T08:20" <= key[0] < "2026-12-04T08:25"}
    assert dict(seeked.counts) == inside


def test_since_counts_back_from_newest_entry(tmp_path):
    path = tmp_path / "access.log"
    _timed_log(path, 20_000)

    summary = logstats.analyze_files([path], since=timedelta(minutes=1))

    assert summary.window_start == "2026-12-04T08:32:20"
    assert summary.entries == 600
    assert summary.files[0].method == "binary-search"


def test_window_out_of_order_reads_all(tmp_path):
    path = tmp_path / "access.log"
    _timed_log(path, 20_000, halves_swapped=True)
    start = datetime(2026, 12, 4, 8, 30, tzinfo=timezone.utc)

    summary = logstats.analyze_files([path], start=start)

    report = summary.files[0]
    assert report.method == "full-read"
    assert "not in order" in report.note
    assert report.bytes_read >= path.stat().st_size
    assert summary.entries == 20_000 - 18_000


def test_error_rate_series():
    path = ROOT / "data" / "recorded" / "oom-incident" / "frontend-istio-proxy-access.log"
    summary = logstats.analyze_files([path])

    series = summary.error_rate()
    assert sum(total for _, total, _ in series) == summary.entries == 8
    assert sum(failing for _, _, failing in series) == summary.failures == 5
    assert sum(summary.failure_series()["503"]) == 5


def test_bounded_top_values():
    top = logstats.TopValues(capacity=10)
    for index in range(100):
        top.add(f"/orders/{index}")
    for _ in range(50):
        top.add("/cart")

    assert top.top(1) == [("/cart", 50)]
    assert len(top.counts) <= 20
    assert top.approximate


@given(st.dictionaries(st.text(max_size=3), st.integers(1, 4), max_size=30), st.integers(0, 12))
def test_top_values_rank_like_all_values(counts, count):
    top = logstats.TopValues(counts=Counter(counts))

    assert top.top(count) == logstats._ranked(counts)[:count]


def test_cli_json(tmp_path, capsys):
    path = ROOT / "data" / "recorded" / "envoy-local-replies" / "access-istio-text.log"

    code = main(["logs", str(path), "--format", "json"])

    assert code == ExitCode.OK
    output = json.loads(capsys.readouterr().out)
    codes = {item["value"]: item["count"] for item in output["totals"]["response_code"]}
    assert codes[401] >= 1
    assert codes[429] >= 1
    assert output["series"]["failures"]
    assert output["malformed"]["count"] == 0


def test_cli_json_indented_only_at_terminal(capsys, monkeypatch):
    path = ROOT / "data" / "recorded" / "envoy-local-replies" / "access-istio-text.log"

    assert main(["logs", str(path), "--format", "json"]) == ExitCode.OK
    piped = capsys.readouterr().out
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["logs", str(path), "--format", "json"]) == ExitCode.OK
    at_terminal = capsys.readouterr().out

    assert piped.count("\n") == 1
    assert at_terminal.startswith('{\n  "window": {')
    assert json.loads(piped) == json.loads(at_terminal)


def test_cli_text_names_failure_kinds(capsys):
    path = ROOT / "data" / "recorded" / "envoy-local-replies" / "access-istio-text.log"

    assert main(["logs", str(path)]) == ExitCode.OK

    output = capsys.readouterr().out
    assert "429 RL local_rate_limited" in output
    assert "rbac_access_denied_matched_policy[none]" in output
    assert "Error rate per minute" in output


def test_cli_rejects_bad_duration(capsys):
    assert main(["logs", "access.log", "--since", "15 minutes"]) == ExitCode.USAGE
    assert "invalid duration" in capsys.readouterr().err


def test_cli_missing_file(tmp_path, capsys):
    assert main(["logs", str(tmp_path / "missing.log")]) == ExitCode.NO_INPUT
    assert "cannot read" in capsys.readouterr().err


def test_compact_object_inside_pretty_json():
    compact = JSON_LINE
    text = "  {\n  \"entry\":\n" + compact + "\n  }\n" + compact

    assert_same(fast_batch("nested.log", text), reference_batch("nested.log", text))


def test_binary_file_is_skipped(tmp_path, capsys):
    path = tmp_path / "core.bin"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40)

    assert main(["logs", str(path)]) == ExitCode.NO_INPUT

    captured = capsys.readouterr()
    assert "binary file" in captured.err
    assert "No access-log entry was read." in captured.out


def test_summary_of_parsed_entries():
    entries = []
    for path in LOG_FILES:
        entries.extend(accesslog.parse(Document(str(path), path.read_text(encoding="utf-8"))).facts)

    from_facts = logstats.summarize_entries(entries)
    from_files = logstats.analyze_files(LOG_FILES)

    assert from_facts.counts == from_files.counts
    assert from_facts.failures == from_files.failures
    assert {key: (kind.count, kind.first, kind.last) for key, kind in from_facts.kinds.items()} == \
        {key: (kind.count, kind.first, kind.last) for key, kind in from_files.kinds.items()}
    assert from_facts.failing_paths.counts == from_files.failing_paths.counts


def _run_cli(arguments: list[str], stdin: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "doctor", "logs", *arguments], input=stdin,
                          capture_output=True, timeout=60, check=False)


def test_cli_reads_standard_input():
    source = ROOT / "data" / "recorded" / "envoy-local-replies" / "access-istio-text.log"
    expected = logstats.analyze_files([source])

    for data in (source.read_bytes(), gzip.compress(source.read_bytes())):
        completed = _run_cli(["-", "--format", "json"], data)

        assert completed.returncode == ExitCode.OK, completed.stderr
        output = json.loads(completed.stdout)
        assert output["entries"] == expected.entries
        assert output["failures"] == expected.failures
        assert output["files"][0]["path"] == "<stdin>"


def test_cli_since_rejects_standard_input():
    completed = _run_cli(["-", "--since", "15m"], b"")

    assert completed.returncode == ExitCode.USAGE
    assert b"--from" in completed.stderr


def test_reading_buffer_is_reused_unless_still_viewed():
    first = logstats._reading_buffer(64)
    first[:] = b"a" * 64
    assert logstats._reading_buffer(32) is first
    assert len(first) == 32

    view = memoryview(first)  # a live export, like a numpy array of the previous piece
    second = logstats._reading_buffer(80)
    assert second is not first
    assert len(second) == 80
    assert bytes(view) == b"a" * 32
    view.release()
