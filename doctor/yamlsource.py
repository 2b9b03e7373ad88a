"""YAML loading that remembers the line of every key, for errors that point at the file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


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
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error)
        raise YamlSyntaxError(source, line, f"invalid YAML: {problem}") from error

    if node is None:
        return LoadedYaml(None, {})

    lines: dict[tuple[Any, ...], int] = {}
    data = _construct(node, (), lines)
    return LoadedYaml(data, lines)


def _construct(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)

    if isinstance(node, yaml.MappingNode):
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            child = path + (key,)
            lines[child] = key_node.start_mark.line + 1
            mapping[key] = _construct(value_node, child, lines)
            lines[child] = key_node.start_mark.line + 1
        return mapping

    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (index,), lines) for index, item in enumerate(node.value)]

    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()
