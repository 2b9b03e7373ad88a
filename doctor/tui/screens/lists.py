"""List screens: the checks that could not run, and the parse problems and skipped inputs."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Header, Static

from doctor.diagnosis import Diagnosis
from doctor.tui import formatting
from doctor.tui.screens.base import DoctorScreen
from doctor.tui.screens.evidence import EvidenceScreen
from doctor.tui.widgets import FilterInput


class CoverageScreen(DoctorScreen):
    """Every check that could not run, with the reason and what to collect, and the count that ran."""

    SCREEN_NAME = "Coverage"

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__()
        self.diagnosis = diagnosis

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
        table = self.query_one(DataTable)
        for label in ("Cause", "Check", "Reason"):
            table.add_column(label, key=label)
        self.apply_filter("")
        table.focus()

    def apply_filter(self, needle: str) -> None:
        folded = needle.casefold()
        table = self.query_one(DataTable)
        table.clear()
        for index, item in enumerate(self.diagnosis.coverage.not_checked):
            row = (item.cause_id, item.check_id, item.reason)
            if folded and folded not in " ".join(row).casefold():
                continue
            table.add_row(*(Text(cell) for cell in row), key=str(index))

    def focus_results(self) -> None:
        self.query_one(DataTable).focus()


class ProblemsScreen(DoctorScreen):
    """Parse problems with their location, and inputs that no reader accepted; enter opens the line."""

    SCREEN_NAME = "Parse problems"

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__()
        self.diagnosis = diagnosis
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
        table = self.query_one(DataTable)
        for label in ("Location", "Kind", "Message"):
            table.add_column(label, key=label)
        self.apply_filter("")
        table.focus()

    def apply_filter(self, needle: str) -> None:
        folded = needle.casefold()
        table = self.query_one(DataTable)
        table.clear()
        for index, (source, line, kind, message) in enumerate(self.rows):
            where = formatting.location(source, line)
            if folded and folded not in f"{where} {kind} {message}".casefold():
                continue
            table.add_row(Text(where), Text(kind), Text(message), key=str(index))

    def focus_results(self) -> None:
        self.query_one(DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        source, line, _, _ = self.rows[int(event.row_key.value or 0)]
        self.app.push_screen(EvidenceScreen(self.diagnosis, source, line))
