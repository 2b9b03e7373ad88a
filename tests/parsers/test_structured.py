"""Line-aware YAML and JSON loading: both loaders cite the same lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from doctor.parsers.structured import (
    LineDict,
    LineList,
    flatten_lines,
    load_documents,
    load_json_documents,
    split_documents,
)

DATA = Path(__file__).resolve().parent.parent / "data"
JSON_FILES = sorted(path for path in DATA.rglob("*.json") if path.is_file())


def node_lines(value: object, path: str = "") -> dict[str, int | None]:
    lines: dict[str, int | None] = {}
    if isinstance(value, (LineDict, LineList)):
        lines[path] = value.line
        items = value.items() if isinstance(value, LineDict) else enumerate(value)
        for key, item in items:
            lines.update(node_lines(item, f"{path}.{key}"))
    return lines


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda path: path.name)
def test_json_loader_matches_yaml_lines(path: Path) -> None:
    text = path.read_text()
    fast, fast_errors = load_json_documents(text)
    slow, slow_errors = load_documents(text)

    assert fast_errors == slow_errors == []
    assert fast[0].data == slow[0].data
    assert fast[0].line == slow[0].line
    assert flatten_lines(fast[0].data) == flatten_lines(slow[0].data)
    assert node_lines(fast[0].data) == node_lines(slow[0].data)


def test_json_surrogate_pairs_load() -> None:
    # PyYAML rejects the surrogate pair escapes Python's json.dumps writes for an emoji.
    text = '{\n  "owner": "\\ud83d\\ude00",\n  "items": [1, "two", null]\n}'
    documents, errors = load_json_documents(text)

    assert errors == []
    assert documents[0].data["owner"] == "\U0001F600"
    assert documents[0].data.key_lines == {"owner": 2, "items": 3}
    assert documents[0].data["items"].item_lines == [3, 3, 3]


def test_json_with_trailing_comma_uses_yaml() -> None:
    documents, errors = load_json_documents('[\n  {"name": "a", "type": "EDS",},\n]')

    assert errors == []
    assert documents[0].data == [{"name": "a", "type": "EDS"}]
    assert documents[0].data[0].key_lines["type"] == 2


def test_invalid_json_reports_line() -> None:
    documents, errors = load_json_documents('{\n  "a": 1,\n  "b": [\n}')

    assert documents == []
    (error,) = errors
    assert error.line == 4
    assert error.message.startswith("invalid YAML or JSON")


def test_split_documents_keeps_line_numbers() -> None:
    parts = list(split_documents("a: 1\n---\nb: 2\n--- # comment\nc: 3\n...\n"))

    assert parts == [(1, "a: 1\n"), (3, "b: 2\n"), (5, "c: 3\n")]
