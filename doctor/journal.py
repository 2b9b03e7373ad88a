"""The session journal: an append-only JSON Lines file per guided session.

Each action and result is one line, written and flushed to disk (fsync)
before the caller moves on, so a session killed at any point loses at most
the entry being written. Reading tolerates a truncated or corrupt line: it is
reported as a problem with its line number and skipped, never fatal.

Sessions live in `$XDG_STATE_HOME/mesh-doctor/sessions/<id>/journal.jsonl`
(`~/.local/state` when XDG_STATE_HOME is unset).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from doctor.model import ParseProblem
from doctor.redact import redact_values

JOURNAL_NAME = "journal.jsonl"
SCHEMA_VERSION = 1

# Entry kinds. A session starts with SESSION_STARTED; the rest follow in time order.
SESSION_STARTED = "session_started"
SCAN = "scan"
FINDING = "finding"
STEP_STARTED = "step_started"
STEP_RESULT = "step_result"
ANSWER = "answer"
COMMAND = "command"
CONFIRMATION = "confirmation"
MILESTONE = "milestone"
NOTE = "note"
SESSION_ENDED = "session_ended"
ENTRY_KINDS = (SESSION_STARTED, SCAN, FINDING, STEP_STARTED, STEP_RESULT, ANSWER, COMMAND,
               CONFIRMATION, MILESTONE, NOTE, SESSION_ENDED)


@dataclass(frozen=True)
class JournalEntry:
    """One journal line: when, who, what kind, and the kind's data."""

    seq: int
    at: datetime
    kind: str
    actor: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"v": SCHEMA_VERSION, "seq": self.seq, "at": self.at.isoformat(),
                           "kind": self.kind, "actor": self.actor,
                           "data": redact_values(self.data)},
                          ensure_ascii=False, sort_keys=True)


@dataclass
class JournalRead:
    entries: list[JournalEntry]
    problems: list[ParseProblem]


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mesh-doctor"


def sessions_dir() -> Path:
    return state_dir() / "sessions"


def new_session_id(now: datetime | None = None) -> str:
    """Return a sortable id such as `20261204T205500Z-3f9a`."""
    moment = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return f"{moment}-{secrets.token_hex(2)}"


class Journal:
    """Appends entries to one session's journal, each flushed to disk before returning."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing = read_journal(path).entries if path.exists() else []
        self._seq = existing[-1].seq if existing else 0

    @classmethod
    def for_session(cls, session_id: str, root: Path | None = None) -> "Journal":
        return cls((root or sessions_dir()) / session_id / JOURNAL_NAME)

    @property
    def session_id(self) -> str:
        return self.path.parent.name

    def append(self, kind: str, data: dict[str, Any] | None = None, *, actor: str = "mesh-doctor",
               at: datetime | None = None) -> JournalEntry:
        if kind not in ENTRY_KINDS:
            raise ValueError(f"unknown journal entry kind {kind!r}; expected one of "
                             f"{', '.join(ENTRY_KINDS)}")
        self._seq += 1
        entry = JournalEntry(self._seq, at or datetime.now(timezone.utc), kind, actor,
                             dict(data or {}))
        line = entry.to_json() + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return entry


def read_journal(path: Path) -> JournalRead:
    """Read every valid entry; a corrupt or truncated line becomes a problem and is skipped."""
    entries: list[JournalEntry] = []
    problems: list[ParseProblem] = []
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return JournalRead([], [ParseProblem(source, None, f"cannot read the journal: "
                                                           f"{error.strerror}")])

    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        entry = _parse_line(line, source, number, problems)
        if entry is not None:
            entries.append(entry)
    return JournalRead(entries, problems)


def list_sessions(root: Path | None = None) -> Iterator[tuple[str, Path]]:
    """Yield (session id, journal path) for every session, newest first."""
    folder = root or sessions_dir()
    if not folder.is_dir():
        return
    for session in sorted(folder.iterdir(), reverse=True):
        journal = session / JOURNAL_NAME
        if journal.is_file():
            yield session.name, journal


def _parse_line(line: str, source: str, number: int,
                problems: list[ParseProblem]) -> JournalEntry | None:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as error:
        problems.append(ParseProblem(source, number, f"corrupt or truncated entry skipped: {error.msg}"))
        return None
    try:
        return JournalEntry(int(raw["seq"]), datetime.fromisoformat(raw["at"]), str(raw["kind"]),
                            str(raw.get("actor", "")), dict(raw.get("data") or {}))
    except (KeyError, TypeError, ValueError) as error:
        problems.append(ParseProblem(source, number, f"entry without a valid {error} skipped"))
        return None

