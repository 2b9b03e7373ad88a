"""Rule, playbook and signature files: one YAML document with the line of every key path.

The loading itself is `doctor.parsers.structured`, shared with the parsers;
this module indexes its line-aware containers by key path for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from doctor.parsers.structured import LineDict, LineList, load_documents


@dataclass(frozen=True)
class LoadedYaml:
    """A YAML document as plain data plus the 1-based line of each key path.

    Key paths are tuples such as `("causes", 3, "confirm", 0, "check")`.
    """

    data: Any
    lines: dict[tuple[Any, ...], int]

    def line_of(self, *path: Any) -> int | None:
        """Return the line of `path`, or of its nearest ancestor the loader saw."""
        probe = tuple(path)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get(())


class YamlSyntaxError(ValueError):
    def __init__(self, source: str, line: int | None, message: str) -> None:
        super().__init__(f"{source}:{line or '?'}: {message}")
        self.source = source
        self.line = line
        self.message = message


def load_yaml(text: str, source: str) -> LoadedYaml:
    """Parse one YAML document, raising `YamlSyntaxError` with the location on bad syntax."""
    documents, errors = load_documents(text)
    if errors:
        raise YamlSyntaxError(source, errors[0].line, errors[0].message)
    if not documents:
        return LoadedYaml(None, {})
    if len(documents) > 1:
        raise YamlSyntaxError(source, documents[1].line,
                              "expected one YAML document, found a second one here")

    lines: dict[tuple[Any, ...], int] = {}
    _index_lines(documents[0].data, (), documents[0].line, lines)
    return LoadedYaml(documents[0].data, lines)


def _index_lines(value: Any, path: tuple[Any, ...], line: int | None,
                 lines: dict[tuple[Any, ...], int]) -> None:
    """Record the line of `path` and of every key and item below it."""
    if line is not None:
        lines.setdefault(path, line)

    if isinstance(value, LineDict):
        for key, item in value.items():
            _index_lines(item, path + (key,), value.key_lines.get(key), lines)
    elif isinstance(value, LineList):
        for index, item in enumerate(value):
            item_line = value.item_lines[index] if index < len(value.item_lines) else None
            _index_lines(item, path + (index,), item_line, lines)
