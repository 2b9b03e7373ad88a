"""The byte-offset reading of access logs against RE2's strict patterns and the tolerant parser."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_logstats import (
    CORPUS,
    JSON_LINE,
    LINE_BREAKS,
    LOG_FILES,
    TEXT_LINE,
    _timed_log,
    assert_same,
    fast_batch,
    mutated_lines,
    reference_batch,
)

from doctor import logbytes, logscan, logstats

JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**17, 10**17),
                        st.floats(allow_nan=False), st.text(max_size=12),
                        st.sampled_from(["-", "", "a b", "x\\y", "é", "!", "2026-12-04T20:18:04Z"]),
                        st.lists(st.integers(), max_size=2))


def matches(pattern: str, line: str) -> bool:
    return pc.match_substring_regex(pa.array([line]), pattern)[0].as_py()


def structural(line: str) -> tuple[bool, bool]:
    """Return whether the TEXT and the JSON check take the line."""
    chunk = logbytes.read_chunk(line.encode("utf-8"))
    text_rows, _ = logbytes.text_lines(chunk)
    json_rows, _ = logbytes.json_lines(chunk, np.zeros(len(chunk), bool))
    return bool(len(text_rows)), bool(len(json_rows))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_lines())
def test_checks_accept_subset_of_patterns(line):
    if any(mark in line for mark in LINE_BREAKS):
        return
    text, compact_json = structural(line)

    if text:
        assert matches(logscan.TEXT_PATTERN, line), line
    if compact_json:
        assert matches(logscan.JSON_PATTERN, line), line


@pytest.mark.parametrize("line", [TEXT_LINE, JSON_LINE], ids=["text", "json"])
def test_one_byte_edits_stay_within_patterns(line):
    """Every deletion of one byte, and every insertion of a space, quote, backslash or letter."""
    variants = [line[:place] + line[place + 1:] for place in range(len(line))]
    variants += [line[:place] + character + line[place:]
                 for place in range(len(line) + 1) for character in ' "\\x']
    chunk = logbytes.read_chunk("\n".join(variants).encode("utf-8"))
    text_rows, _ = logbytes.text_lines(chunk)
    json_rows, _ = logbytes.json_lines(chunk, np.zeros(len(chunk), bool))
    for rows, pattern in ((text_rows, logscan.TEXT_PATTERN), (json_rows, logscan.JSON_PATTERN)):
        accepted = pa.array([variants[row] for row in rows.tolist()], pa.string())
        rejected = pc.invert(pc.match_substring_regex(accepted, pattern)).to_numpy(zero_copy_only=False)
        assert not rejected.any(), [variants[row] for row in rows[rejected].tolist()][:3]
    assert len(text_rows) + len(json_rows) > 0


def test_checks_take_recorded_lines():
    assert structural(TEXT_LINE) == (True, False)
    assert structural(JSON_LINE) == (False, True)


@pytest.mark.parametrize("key", logbytes.JSON_KEYS)
def test_json_check_rejects_key_with_one_byte_changed(key):
    entry = json.loads(JSON_LINE)
    for place in (0, len(key) // 2, len(key) - 1):
        changed = key[:place] + ("y" if key[place] == "x" else "x") + key[place + 1:]
        variant = dict(entry)
        variant[changed] = variant.pop(key)
        line = json.dumps(variant, separators=(",", ":"), sort_keys=True)
        assert structural(line) == (False, False), changed


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet="-0123456789nul", max_size=17),
                          st.integers(-10**16, 10**16).map(str)), min_size=1, max_size=20))
def test_scalar_check_takes_json_integers_and_null(tokens):
    chunk = logbytes.read_chunk("\n".join(tokens).encode("ascii"))
    fits = logbytes._scalar_fits(chunk, chunk.starts, chunk.ends)
    expected = [re.fullmatch(r"-?(?:0|[1-9][0-9]*)|null", token) is not None and len(token) <= 15
                for token in tokens]
    assert fits.tolist() == expected


@st.composite
def json_variants(draw) -> str:
    """Change one recorded JSON entry: keys, value types, key order and spacing."""
    value = json.loads(JSON_LINE)
    keys = sorted(value)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["value", "drop", "rename"]))
        if action == "value":
            value[key] = draw(JSON_VALUES)
        elif action == "drop":
            value.pop(key, None)
        elif action == "rename" and key in value:
            value[key[:-1] + draw(st.sampled_from("xe_"))] = value.pop(key)
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")]))
    line = json.dumps(value, separators=separators, sort_keys=draw(st.booleans()),
                      ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()) and '":"' in line:
        position = draw(st.integers(0, len(line) - 1))
        line = line[:position] + draw(st.sampled_from(['"', "\\", " ", ",", "0", "{"])) + line[position:]
    return line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(json_variants(), min_size=1, max_size=6))
def test_json_variants_agree_with_parser(lines):
    # The parser splits documents at every `str.splitlines` break, the scanner at `\n` only.
    lines = [line for line in lines if not any(mark in line for mark in LINE_BREAKS)]
    text = "\n".join(lines)

    assert_same(fast_batch("variants.log", text), reference_batch("variants.log", text))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"),
                        max_size=40), min_size=1, max_size=8))
def test_views_return_byte_ranges(values):
    data = "\n".join(values).encode("utf-8")
    chunk = logbytes.read_chunk(data)

    viewed = logbytes.views(chunk, chunk.starts, chunk.ends)

    assert viewed.to_pylist() == values
    viewed.validate(full=True)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.from_regex(r"\A[0-9a-f.:\[\]]{0,12}:[0-9]{0,9}\Z"),
    st.sampled_from(["-", "10.244.2.20:59510", ":80", "[::1]:8080", "[::1]", "a:1:2", "host:",
                     "host:8o", "10.0.0.1:123456789", "x" * 20 + ":1"])))
def test_strip_ports_matches_caller_of(address):
    line = "[" + address + "]"  # bytes before the address, as in a real line
    chunk = logbytes.read_chunk(line.encode("ascii"))
    start = np.array([1])
    end = np.array([1 + len(address)])

    host_end, stripped = logbytes.strip_ports(chunk, start, end)

    expected = logscan.caller_of(address)
    if stripped[0]:
        assert line[1:int(host_end[0])] == expected
    elif expected != address:
        # Left to caller_of only when the port is too long for the 8-byte window.
        assert len(address.rpartition(":")[2]) >= 8


@pytest.mark.parametrize("path", LOG_FILES, ids=lambda path: path.name)
def test_processes_match_threads(path):
    threads = logstats.analyze_files([path])
    processes = logstats.analyze_files([path], processes=True)

    assert processes.counts == threads.counts
    assert processes.entries == threads.entries
    assert processes.malformed == threads.malformed
    assert [(problem.line, problem.message) for problem in processes.problems] == \
        [(problem.line, problem.message) for problem in threads.problems]
    assert processes.failing_callers.counts == threads.failing_callers.counts


def test_processes_cut_pieces_at_newlines(tmp_path, monkeypatch):
    text = "".join(path.read_text(encoding="utf-8") for path in CORPUS)
    path = tmp_path / "joined.log"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(logstats, "CHUNK_BYTES", 900)

    summary = logstats.analyze_files([path], processes=True)
    reference = reference_batch(str(path), text)

    assert summary.entries == reference.entries
    assert summary.counts == Counter(reference.counts)
    assert summary.malformed == len(reference.problems)
    assert summary.files[0].lines == text.count("\n")


def test_processes_read_window_like_threads(tmp_path, monkeypatch):
    path = tmp_path / "access.log"
    _timed_log(path, 20_000)
    monkeypatch.setattr(logstats, "CHUNK_BYTES", 64 * 1024)
    start = datetime(2026, 12, 4, 8, 20, tzinfo=timezone.utc)
    end = datetime(2026, 12, 4, 8, 25, tzinfo=timezone.utc)

    threads = logstats.analyze_files([path], start=start, end=end)
    processes = logstats.analyze_files([path], start=start, end=end, processes=True)

    assert processes.files[0].method == "binary-search"
    assert processes.entries == threads.entries == 3000
    assert processes.counts == threads.counts
    assert processes.outside_window == threads.outside_window
    assert processes.files[0].bytes_read < path.stat().st_size / 2


PARENT = os.getpid()
SCAN_PIECE = logstats._scan_piece


def die_in_worker(source, piece, window):
    """Stand in for `_scan_piece`: a forked worker exits at once, as if it were killed."""
    if os.getpid() != PARENT:
        os._exit(1)
    return SCAN_PIECE(source, piece, window)


def test_dead_worker_falls_back_to_threads(monkeypatch):
    path = LOG_FILES[0]
    monkeypatch.setattr(logstats, "_scan_piece", die_in_worker)

    summary = logstats.analyze_files([path], processes=True)
    threads = logstats.analyze_files([path])

    assert summary.counts == threads.counts
    assert summary.entries == threads.entries > 0
    assert len(summary.files) == 1
    assert any("worker process died" in note for note in summary.notes)


@given(st.binary(max_size=200))
def test_chunk_ascii_flag_matches_bytes(data):
    assert logbytes.read_chunk(data).ascii == data.isascii()


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_undecodable_bytes_are_replaced(tmp_path, processes):
    broken = TEXT_LINE.replace('"curl', '"cu\udcffrl', 1).encode("utf-8", "surrogateescape")
    accented = TEXT_LINE.replace('"curl', '"cürl', 1).encode("utf-8")
    data = b"\n".join([TEXT_LINE.encode(), broken, accented, TEXT_LINE.encode()]) + b"\n"
    path = tmp_path / "access.log"
    path.write_bytes(data)

    summary = logstats.analyze_files([path], processes=processes)
    reference = reference_batch(str(path), data.decode("utf-8", errors="replace"))

    assert b"\xff" in data
    assert summary.entries == reference.entries == 4
    assert summary.counts == Counter(reference.counts)


def fail_second_piece(source, piece, window):
    """Stand in for `_scan_piece`: the second piece of first.log fails as if the file had shrunk."""
    if source.endswith("first.log") and 0 < piece.begin < 2 * logstats.CHUNK_BYTES:
        raise EOFError(f"{piece.path} is shorter than expected: it changed while it was read")
    return SCAN_PIECE(source, piece, window)


def test_failed_worker_piece_stops_its_file(tmp_path, monkeypatch):
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    _timed_log(first, 3000)
    _timed_log(second, 2000)
    monkeypatch.setattr(logstats, "CHUNK_BYTES", 64 * 1024)
    monkeypatch.setattr(logstats, "_scan_piece", fail_second_piece)

    summary = logstats.analyze_files([first, second], processes=True)
    failed, read = summary.files
    head = tmp_path / "head.log"
    head.write_text("".join(first.read_text().splitlines(keepends=True)[:failed.lines]))
    expected = logstats.analyze_files([head, second])

    assert failed.note.startswith("reading stopped: ")
    assert 0 < failed.lines < 3000
    assert read.lines == read.entries == 2000
    assert summary.counts == expected.counts
    assert summary.failures == expected.failures
    assert summary.entries == expected.entries


def test_arrow_lines_honor_window():
    # A non-ASCII user agent keeps these lines out of the offset check, so RE2 and Arrow read them.
    entry = json.loads(JSON_LINE)
    lines = []
    for minute in ("20:17", "20:18", "20:19"):
        entry.update(start_time=f"2026-12-04T{minute}:04.048Z", user_agent="navigateur-é")
        lines.append(json.dumps(entry, separators=(",", ":"), sort_keys=True, ensure_ascii=False))
    chunk = logbytes.read_chunk("\n".join(lines).encode("utf-8"))
    assert len(logscan._classify_chunk(chunk).arrow_json_rows) == 3

    batch, _ = logscan.scan_text("window.log", 1, "\n".join(lines), True,
                                 ("2026-12-04T20:18:00", "2026-12-04T20:19:00"))

    assert batch.entries == 1
    assert batch.outside_window == 2
    assert [key[0] for key in batch.counts] == ["2026-12-04T20:18"]
