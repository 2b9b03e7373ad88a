"""List screens: the checks that could not run, and the parse problems and skipped inputs."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Header, Static

from doctor.diagnosis import Diagnosis
from doctor.tui import formatting
from doctor.tui.screens.base import DoctorScreen
from doctor.tui.screens.evidence import EvidenceScreen
from doctor.tui.widgets import FilterInput, row_width


class _TableScreen(DoctorScreen):
    """A screen of one summary line over a filterable table whose columns fit the screen width."""

    COLUMNS: ClassVar[tuple[str, ...]] = ()
    TABLE_ID: ClassVar[str] = ""
    SUMMARY_ID: ClassVar[str] = ""
    FILTER_PLACEHOLDER: ClassVar[str] = ""
    SUB_TITLE: ClassVar[str] = ""

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__()
        self.diagnosis = diagnosis
        self._needle = ""

    def summary(self) -> str:
        """Build the line shown above the table."""
        raise NotImplementedError

    def table_rows(self) -> list[tuple[str, ...]]:
        """Build the text of every row, one cell per column, before filtering."""
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.summary(), id=self.SUMMARY_ID, markup=False)
        yield DataTable(id=self.TABLE_ID, cursor_type="row", zebra_stripes=True)
        yield FilterInput(self.FILTER_PLACEHOLDER)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.SUB_TITLE
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
        rows = self.table_rows()
        table = self.query_one(DataTable)
        _set_columns(table, self.COLUMNS, rows, self.app.size.width)
        for index, row in enumerate(rows):
            if folded and folded not in " ".join(row).casefold():
                continue
            table.add_row(*(Text(cell) for cell in row), key=str(index), height=None)

    def focus_results(self) -> None:
        self.query_one(DataTable).focus()


class CoverageScreen(_TableScreen):
    """Every check that could not run, with the reason and what to collect, and the count that ran."""

    SCREEN_NAME = "Coverage"
    COLUMNS = ("Cause", "Check", "Reason")
    TABLE_ID = "not-checked"
    SUMMARY_ID = "coverage-summary"
    FILTER_PLACEHOLDER = "filter by check, cause or reason; enter keeps it, escape clears"
    SUB_TITLE = "coverage"

    def summary(self) -> str:
        coverage = self.diagnosis.coverage
        return (
            f"{formatting.plural(len(coverage.checked), 'check')} ran; "
            f"{formatting.plural(len(coverage.not_checked), 'check')} could not run. "
            "A check that could not run is not a pass: collect what its reason names."
        )

    def table_rows(self) -> list[tuple[str, ...]]:
        return [(item.cause_id, item.check_id, item.reason)
                for item in self.diagnosis.coverage.not_checked]


class ProblemsScreen(_TableScreen):
    """Parse problems with their location, and inputs that no reader accepted; enter opens the line."""

    SCREEN_NAME = "Parse problems"
    COLUMNS = ("Location", "Kind", "Message")
    TABLE_ID = "problem-list"
    SUMMARY_ID = "problems-summary"
    FILTER_PLACEHOLDER = "filter by input or message; enter keeps it, escape clears"
    SUB_TITLE = "parse problems and skipped inputs"

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__(diagnosis)
        self.rows: list[tuple[str, int | None, str, str]] = [
            (problem.source, problem.line, "parse problem", problem.message)
            for problem in diagnosis.parse_problems
        ] + [(skipped.source, None, "skipped", skipped.reason) for skipped in diagnosis.skipped]

    def summary(self) -> str:
        return formatting.problems_line(self.diagnosis)

    def table_rows(self) -> list[tuple[str, ...]]:
        root = formatting.source_root(self.diagnosis)
        return [
            (formatting.short_source(formatting.location(source, line), root), kind, message)
            for source, line, kind, message in self.rows
        ]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        source, line, _, _ = self.rows[int(event.row_key.value or 0)]
        self.app.push_screen(EvidenceScreen(self.diagnosis, source, line))


def _set_columns(table: DataTable, labels: tuple[str, ...], rows: list[tuple[str, ...]],
                 screen_width: int) -> None:
    """Clear `table` and add columns sized to `screen_width`.

    Each column but the last fits its longest text, up to a quarter of the
    width, and the last takes the rest. Rows are added with automatic height,
    so text longer than its column wraps.
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
