"""Shared records of the core: input documents, parse results, evidence and observations.

Every parser receives a `Document` and returns a `ParseResult`. Facts are frozen
dataclasses defined next to the parser that makes them. Each carries `source`
and `line`, so a finding can cite where it came from.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Document:
    """One text input: a file, a member of an archive, or a probe's raw output."""

    source: str
    text: str

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


@dataclass(frozen=True)
class ParseProblem:
    """A part of an input that a parser could not read, with its location."""

    source: str
    line: int | None
    message: str


@dataclass(frozen=True)
class Skipped:
    """An input that no reader accepted, or that could not be read at all."""

    source: str
    reason: str


@dataclass
class ParseResult:
    """The facts and problems one parser produced from one document."""

    kind: str
    facts: list[Any] = field(default_factory=list)
    problems: list[ParseProblem] = field(default_factory=list)


@dataclass(frozen=True)
class Evidence:
    """One cited line: its location, its text, and whether it supports the cause."""

    source: str
    line: int | None
    text: str
    supports: bool = True
    note: str = ""


class ProbeStatus(str, enum.Enum):
    OK = "ok"
    FAILED = "failed"
    UNAVAILABLE = "unavailable"
    FORBIDDEN = "forbidden"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class Observation:
    """The immutable record of one probe run; `argv` has secrets masked already."""

    probe_id: str
    argv: tuple[str, ...]
    started_at: datetime
    duration_s: float
    exit_status: int | None
    status: ProbeStatus
    output: str
    reason: str = ""
    target: str = ""
