"""List screens: the checks that could not run, and the parse problems and skipped inputs."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Header, Static

from doctor.diagnosis import Diagnosis
from doctor.tui import formatting
from doctor.tui.screens.base import DoctorScreen
from doctor.tui.screens.evidence import EvidenceScreen
from doctor.tui.widgets import FilterInput, row_width


class CoverageScreen(DoctorScreen):
    """Every check that could not run, with the reason and what to collect, and the count that ran."""

    SCREEN_NAME = "Coverage"

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__()
        self.diagnosis = diagnosis
        self._needle = ""

    def compose(self) -> ComposeResult:
        coverage = self.diagnosis.coverage
        yield Header()
        yield Static(
            f"{formatting.plural(len(coverage.checked), 'check')} ran; "
            f"{formatting.plural(len(coverage.not_checked), 'check')} could not run. "
            "A check that could not run is not a pass: collect what its reason names.",
            id="coverage-summary",
            markup=False,
        )
        yield DataTable(id="not-checked", cursor_type="row", zebra_stripes=True)
        yield FilterInput("filter by check, cause or reason; enter keeps it, escape clears")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "coverage"
        self.apply_filter("")
        self.focus_results()
        # The first fill runs before the table's first layout; refill with its real width.
        self.call_after_refresh(self._fill)

    def apply_filter(self, needle: str) -> None:
        self._needle = needle
        self._fill()

    def on_resize(self) -> None:
        # Sizes are final only after the layout that follows this event.
        self.call_after_refresh(self._fill)

    def _fill(self) -> None:
        folded = self._needle.casefold()
        rows = [(item.cause_id, item.check_id, item.reason)
                for item in self.diagnosis.coverage.not_checked]
        table = self.query_one(DataTable)
        _set_columns(table, ("Cause", "Check", "Reason"), rows, self.app.size.width)
        for index, row in enumerate(rows):
            if folded and folded not in " ".join(row).casefold():
                continue
            table.add_row(*(Text(cell) for cell in row), key=str(index), height=None)

    def focus_results(self) -> None:
        self.query_one(DataTable).focus()


class ProblemsScreen(DoctorScreen):
    """Parse problems with their location, and inputs that no reader accepted; enter opens the line."""

    SCREEN_NAME = "Parse problems"

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__()
        self.diagnosis = diagnosis
        self._needle = ""
        self.rows: list[tuple[str, int | None, str, str]] = [
            (problem.source, problem.line, "parse problem", problem.message)
            for problem in diagnosis.parse_problems
        ] + [(skipped.source, None, "skipped", skipped.reason) for skipped in diagnosis.skipped]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(formatting.problems_line(self.diagnosis), id="problems-summary", markup=False)
        yield DataTable(id="problem-list", cursor_type="row", zebra_stripes=True)
        yield FilterInput("filter by input or message; enter keeps it, escape clears")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "parse problems and skipped inputs"
        self.apply_filter("")
        self.focus_results()
        # The first fill runs before the table's first layout; refill with its real width.
        self.call_after_refresh(self._fill)

    def apply_filter(self, needle: str) -> None:
        self._needle = needle
        self._fill()

    def on_resize(self) -> None:
        # Sizes are final only after the layout that follows this event.
        self.call_after_refresh(self._fill)

    def _fill(self) -> None:
        folded = self._needle.casefold()
        root = formatting.source_root(self.diagnosis)
        rows = [
            (formatting.short_source(formatting.location(source, line), root), kind, message)
            for source, line, kind, message in self.rows
        ]
        table = self.query_one(DataTable)
        _set_columns(table, ("Location", "Kind", "Message"), rows, self.app.size.width)
        for index, row in enumerate(rows):
            if folded and folded not in " ".join(row).casefold():
                continue
            table.add_row(*(Text(cell) for cell in row), key=str(index), height=None)

    def focus_results(self) -> None:
        self.query_one(DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        source, line, _, _ = self.rows[int(event.row_key.value or 0)]
        self.app.push_screen(EvidenceScreen(self.diagnosis, source, line))


def _set_columns(table: DataTable, labels: tuple[str, ...], rows: list[tuple[str, ...]],
                 screen_width: int) -> None:
    """Clear `table` and size its columns: the first ones fit their text up to a quarter, the last takes the rest.

    Rows are added with automatic height, so text longer than its column wraps.
    """
    table.clear(columns=True)
    # The table has a margin of one cell on each side (app.tcss), and each
    # column pads one cell on both sides.
    text_width = row_width(table, screen_width - 2) - 2 * len(labels)
    widths = [
        min(max([len(label)] + [len(row[position]) for row in rows]), max(text_width // 4, 8))
        for position, label in enumerate(labels[:-1])
    ]
    widths.append(max(text_width - sum(widths), 12))
    for label, width in zip(labels, widths):
        table.add_column(label, key=label, width=width)
