"""The live-collection progress dialog: probes done of the total, what runs, failures, and cancel.

The dialog only renders `CollectionProgress` messages the app forwards and
sets the cancel event the collection worker watches; the worker decides what
a cancel stops.
"""

from __future__ import annotations

import threading

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from doctor.tui.messages import CollectionProgress

# Probes named on the running line; the rest are counted.
RUNNING_NAMED = 3


class CollectionScreen(ModalScreen[None]):
    """Shows the progress of a read-only live collection; escape or ctrl+c cancels it."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel collection"),
        Binding("ctrl+c", "cancel", "Cancel collection", show=False, priority=True),
    ]

    SCREEN_NAME = "Live collection"

    def __init__(self, symptom: str, cancel: threading.Event) -> None:
        super().__init__()
        self.symptom = symptom
        self.cancel = cancel

    def compose(self) -> ComposeResult:
        with Vertical(id="collection"):
            yield Static(f"Collecting evidence for {self.symptom} (read-only)", id="collection-title",
                         markup=False)
            yield Static("Planning the probes and asking the API server what may be read …",
                         id="collection-count", markup=False)
            yield Static("", id="collection-running", markup=False)
            yield Static("No probe failed so far.", id="collection-failures", markup=False)
            yield Static("escape cancels: running probes are abandoned, the others are reported as not run",
                         id="collection-hint", markup=False)

    def show_progress(self, progress: CollectionProgress) -> None:
        """Render the counts, the probes still running and the failures of `progress`."""
        self.query_one("#collection-count", Static).update(
            f"{progress.wave}: {progress.done} of {progress.total} probes done; last {progress.finished}")

        named = ", ".join(progress.running[:RUNNING_NAMED])
        more = len(progress.running) - RUNNING_NAMED
        if more > 0:
            named += f" and {more} more"
        self.query_one("#collection-running", Static).update(f"Running: {named}" if named else "")

        if progress.failures:
            counts = ", ".join(f"{status.replace('_', ' ')} {count}"
                               for status, count in sorted(progress.failures.items()))
            self.query_one("#collection-failures", Static).update(f"Not ok so far: {counts}")

    def action_cancel(self) -> None:
        if self.cancel.is_set():
            return
        self.cancel.set()
        self.query_one("#collection-hint", Static).update(
            "Cancelling: the running probes are abandoned; the diagnosis uses what was collected …")
