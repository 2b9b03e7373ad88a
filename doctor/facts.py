"""The set of facts gathered from every input, queried by type."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, TypeVar

from doctor.model import Document, ParseProblem, Skipped

T = TypeVar("T")


class FactSet:
    """Facts grouped by their dataclass type, plus the reader kinds that produced any."""

    def __init__(self) -> None:
        self._by_type: dict[type, list[Any]] = defaultdict(list)
        self.kinds: dict[str, list[str]] = defaultdict(list)
        self.problems: list[ParseProblem] = []
        self.skipped: list[Skipped] = []
        self._documents: dict[str, Document] = {}
        self._lines: dict[str, list[str]] = {}

    def add(self, kind: str, source: str, facts: Iterable[Any]) -> int:
        count = 0
        for fact in facts:
            self._by_type[type(fact)].append(fact)
            count += 1
        if source not in self.kinds[kind]:
            self.kinds[kind].append(source)
        return count

    def add_document(self, document: Document) -> None:
        """Keep a read document so evidence can quote its raw lines."""
        self._documents[document.source] = document

    def line_text(self, source: str, line: int | None) -> str | None:
        """Return the raw text of a 1-based line of a read document, or None."""
        document = self._documents.get(source)
        if document is None or line is None or line < 1:
            return None
        if source not in self._lines:
            self._lines[source] = document.text.splitlines()
        lines = self._lines[source]
        return lines[line - 1] if line <= len(lines) else None

    def of(self, fact_type: type[T]) -> list[T]:
        """Return every fact of `fact_type`, in the order they were read."""
        return list(self._by_type.get(fact_type, ()))

    def has_kind(self, kind: str) -> bool:
        return bool(self.kinds.get(kind))
