"""Messages that workers post to the UI: a finished result or a failure.

Workers never touch widgets. Each one posts exactly one of these messages when
it ends, and the handlers on the app and the screens render the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

from doctor.diagnosis import Diagnosis
from doctor.playbooks import Playbook
from doctor.session import Session

if TYPE_CHECKING:
    from doctor.facts import FactSet
    from doctor.logstats import LogSummary


@dataclass
class ScanCompleted(Message):
    """The scan of the input paths finished with this diagnosis.

    `playbooks` maps playbook ids to the loaded playbooks. When the playbook
    files could not be loaded, it is empty and `playbook_error` gives the
    reason. The diagnosis is shown either way. `log_summary` contains the
    per-minute series of the access-log entries the scan read, or None when
    it read none. `facts` are the facts the diagnosis was made from, which
    a guided session takes its placeholder values from.
    """

    diagnosis: Diagnosis
    playbooks: dict[str, Playbook] = field(default_factory=dict)
    playbook_error: str | None = None
    log_summary: LogSummary | None = None
    facts: FactSet | None = None


@dataclass
class SummaryReady(Message):
    """The incident summary (its redacted `to_dict` form) is built and can be previewed."""

    data: dict
    moment: datetime


@dataclass
class ReportExported(Message):
    """The incident summary was written to `path`."""

    path: Path


@dataclass
class SourceLoaded(Message):
    """The text of one input, split into lines, for the evidence browser.

    `line` is the 1-based line to highlight, if the browser was asked for one.
    `truncated` is true when the input is longer than the browser reads.
    """

    source: str
    lines: list[str]
    line: int | None = None
    truncated: bool = False


@dataclass
class WorkFailed(Message):
    """A worker failed; the app shows `title` and `message` in an error dialog."""

    title: str
    message: str


@dataclass
class SessionOpened(Message):
    """A guided session started or was rebuilt from its journal; the app shows its screen."""

    session: Session


@dataclass
class SymptomRejected(Message):
    """The symptom form's scope was invalid (unknown symptom or service); the form opens again."""

    reason: str


@dataclass
class CollectionProgress(Message):
    """A live-collection probe finished: counts in its wave, what still runs, failures so far by status."""

    done: int
    total: int
    wave: str
    finished: str
    running: tuple[str, ...]
    failures: dict[str, int]


@dataclass
class CollectionEnded(Message):
    """The live collection ended, cancelled or not; `not_run` counts the probes a cancel kept from starting."""

    cancelled: bool
    not_run: int
    cancelled_running: int
