"""YAML and JSON loading that keeps the source line of every key and list item.

Parsers of structured inputs (Istio resources, Envoy config dumps, istioctl
JSON and YAML) need the line of a key to cite it as evidence. `load_documents`
returns mappings as `LineDict` and sequences as `LineList`: ordinary dicts and
lists that also carry the 1-based line of the node and of each key or item.

A multi-document YAML stream is split at `---` lines first, so a syntax error
in one document costs only that document.
"""

from __future__ import annotations

import bisect
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Iterator

import yaml

logger = logging.getLogger(__name__)

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DOCUMENT_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$")
_DOCUMENT_END = re.compile(r"^\.\.\.[ \t]*$")


class LineDict(dict):
    """A mapping that also stores its own line and the line of each key."""

    __slots__ = ("line", "key_lines")

    def __init__(self, line: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}


class LineList(list):
    """A sequence that also stores its own line and the line of each item."""

    __slots__ = ("line", "item_lines")

    def __init__(self, line: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


@dataclass(frozen=True)
class LoadedDocument:
    data: Any
    line: int


@dataclass(frozen=True)
class LoadError:
    line: int | None
    message: str


def key_line(container: Any, key: Any) -> int | None:
    """Return the line of `key` in a LineDict (or of item `key` in a LineList), else None."""
    if isinstance(container, LineDict):
        return container.key_lines.get(key)
    if isinstance(container, LineList) and isinstance(key, int) and 0 <= key < len(container.item_lines):
        return container.item_lines[key]
    return None


def node_line(value: Any) -> int | None:
    """Return the line where a loaded mapping or sequence starts, else None."""
    if isinstance(value, (LineDict, LineList)):
        return value.line
    return None


def split_documents(text: str) -> Iterator[tuple[int, str]]:
    """Yield (first line number, text) for each `---`-separated part of a YAML stream."""
    lines = text.splitlines(keepends=True)
    start = 0
    for index, line in enumerate(lines):
        stripped = line.rstrip("\r\n")
        if _DOCUMENT_SEPARATOR.match(stripped) or _DOCUMENT_END.match(stripped):
            if index > start:
                yield start + 1, "".join(lines[start:index])
            start = index + 1
    if start < len(lines):
        yield start + 1, "".join(lines[start:])


def load_documents(text: str) -> tuple[list[LoadedDocument], list[LoadError]]:
    """Load every YAML or JSON document of `text`, with line-aware containers.

    Empty documents (only comments or blank lines) are left out. A document
    that cannot be loaded becomes a `LoadError` with the line the loader
    reported; the other documents are still returned.
    """
    documents: list[LoadedDocument] = []
    errors: list[LoadError] = []

    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        parts: Iterator[tuple[int, str]] = iter([(1, text)])
    else:
        parts = split_documents(text)

    for first_line, part in parts:
        if not part.strip():
            continue
        try:
            for data, line in _load_part(part, first_line - 1):
                documents.append(LoadedDocument(data, line))
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = mark.line + first_line if mark is not None else first_line
            problem = error.problem or str(error)
            errors.append(LoadError(line, f"invalid YAML or JSON: {problem}"))
        except yaml.YAMLError as error:
            errors.append(LoadError(first_line, f"invalid YAML or JSON: {error}"))
    return documents, errors


class _Pairs(list):
    """An object's (key, value) pairs as json.loads saw them, duplicates included."""


class _TokenMismatch(Exception):
    """The scanned tokens do not follow the decoded tree, so line numbers would be wrong."""


def load_json_documents(text: str) -> tuple[list[LoadedDocument], list[LoadError]]:
    """Load `text` like `load_documents`, reading strict JSON with the fast C decoder.

    Large config dumps take seconds through the YAML loader and a fraction of
    that here. Text that is not strict JSON goes through `load_documents`.
    """
    if text.lstrip().startswith(("{", "[")):
        loaded = _load_json(text)
        if loaded is not None:
            return [loaded], []
    return load_documents(text)


# JSON tokens that start a value or name a key. Outside strings JSON has no
# quote characters, so a left-to-right scan meets them in document order.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"(\s*:)?|[{\[]|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null')


def _load_json(text: str) -> LoadedDocument | None:
    """Decode strict JSON, then give every mapping, sequence, key and item its line.

    A depth-first walk of the decoded tree visits values and keys in the
    order the scan meets their tokens, so each takes the next token's line.
    """
    try:
        data = json.loads(text, object_pairs_hook=_Pairs)
    except (json.JSONDecodeError, RecursionError):
        return None
    newlines = [match.start() for match in re.finditer("\n", text)]
    tokens = _JSON_TOKEN.finditer(text)

    def take(expected: str) -> int:
        token = next(tokens, None)
        if token is None:
            raise _TokenMismatch(expected)
        value = token.group(0)
        if token.group(1):
            kind = "key"
        elif value in ("{", "["):
            kind = value
        else:
            kind = "scalar"
        if kind != expected:
            raise _TokenMismatch(f"expected {expected} at offset {token.start()}, found {value[:20]!r}")
        return bisect.bisect_right(newlines, token.start() - 1) + 1

    def convert(value: Any) -> tuple[Any, int]:
        if isinstance(value, _Pairs):
            mapping = LineDict(take("{"))
            for key, item in value:
                key_line_number = take("key")
                mapping[key], _ = convert(item)
                mapping.key_lines[key] = key_line_number
            return mapping, mapping.line
        if isinstance(value, list):
            sequence = LineList(take("["))
            for item in value:
                converted, line = convert(item)
                sequence.append(converted)
                sequence.item_lines.append(line)
            return sequence, sequence.line
        return value, take("scalar")

    try:
        converted, line = convert(data)
    except _TokenMismatch as error:
        logger.debug("JSON line mapping failed, falling back to the YAML loader: %s", error)
        return None
    return LoadedDocument(converted, line)


def _load_part(part: str, line_offset: int) -> Iterator[tuple[Any, int]]:
    loader = _Loader(part)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            yield _convert(loader, node, line_offset), node.start_mark.line + 1 + line_offset
    finally:
        loader.dispose()


def _convert(loader: Any, node: yaml.Node, offset: int) -> Any:
    if isinstance(node, yaml.MappingNode):
        mapping = LineDict(node.start_mark.line + 1 + offset)
        for key_node, value_node in node.value:
            key = _convert(loader, key_node, offset)
            if isinstance(key, (dict, list)):
                key = str(key)
            mapping[key] = _convert(loader, value_node, offset)
            mapping.key_lines[key] = key_node.start_mark.line + 1 + offset
        return mapping
    if isinstance(node, yaml.SequenceNode):
        sequence = LineList(node.start_mark.line + 1 + offset)
        for item in node.value:
            sequence.append(_convert(loader, item, offset))
            sequence.item_lines.append(item.start_mark.line + 1 + offset)
        return sequence

    # Timestamps stay strings so every parser compares and prints them alike.
    if node.tag.endswith(":timestamp"):
        return node.value
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError:
        logger.debug("keeping unconstructable scalar %r as text", node.value)
        return node.value


def flatten_lines(value: Any, prefix: str = "") -> dict[str, int]:
    """Map dotted paths ("rules.0.from.0.source.principals.1") to their source lines."""
    result: dict[str, int] = {}
    if isinstance(value, LineDict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            line = value.key_lines.get(key)
            if line is not None:
                result[path] = line
            result.update(flatten_lines(item, path))
    elif isinstance(value, LineList):
        for index, item in enumerate(value):
            path = f"{prefix}.{index}" if prefix else str(index)
            if index < len(value.item_lines):
                result[path] = value.item_lines[index]
            result.update(flatten_lines(item, path))
    return result
