"""The first screen: what was read, the symptoms, the error-rate chart, and the ranked findings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Header, Static

from doctor.diagnosis import CauseStatus, Diagnosis
from doctor.playbooks import Playbook
from doctor.tui import formatting
from doctor.tui.screens.base import DoctorScreen
from doctor.tui.screens.evidence import EvidenceScreen
from doctor.tui.screens.finding import FindingScreen
from doctor.tui.screens.lists import CoverageScreen, ProblemsScreen
from doctor.tui.widgets import FilterInput, row_width
from doctor.tui.widgets_chart import ErrorRateChart

if TYPE_CHECKING:
    from doctor.logstats import LogSummary

FINDING_COLUMNS = ("#", "Status", "Score", "Cause and chain (symptom → … → cause)")


class TriageScreen(DoctorScreen):
    """Sources, a coverage banner when checks could not run, symptoms, the error rate and ranked findings.

    The error-rate chart shows only when the scan read access-log entries; the
    line under it totals the minutes its window shows.
    """

    BINDINGS = [
        Binding("enter", "open_finding", "Open finding", show=False),
        Binding("c", "coverage", "Coverage"),
        Binding("p", "problems", "Problems"),
        Binding("i", "inputs", "Inputs"),
    ]

    SCREEN_NAME = "Triage"

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self.paths = paths
        self.diagnosis: Diagnosis | None = None
        self.playbooks: dict[str, Playbook] = {}
        self.playbook_error: str | None = None
        self.log_summary: LogSummary | None = None
        self._needle = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="banner", markup=False)
        yield Static(formatting.sources_line(self.paths, None), id="sources", markup=False)
        yield Static("Symptoms", classes="section-title")
        yield Static("Scanning …", id="symptoms", markup=False)
        with Vertical(id="chart-box"):
            yield Static("Error rate", classes="section-title")
            chart = ErrorRateChart(id="error-chart")
            # Hidden until a scan gives a series: it must not take the focus, nor put its keys in the footer.
            chart.can_focus = False
            yield chart
            yield Static(id="chart-window", markup=False)
        yield Static("Findings", classes="section-title")
        table: DataTable = DataTable(id="findings", cursor_type="row", zebra_stripes=True)
        for label in FINDING_COLUMNS:
            table.add_column(label, key=label)
        yield table
        yield Static(id="problems", markup=False)
        yield FilterInput("filter findings by status, cause or chain; enter keeps it, escape clears")
        yield Footer()

    def on_mount(self) -> None:
        if self.diagnosis is None:
            self.query_one("#findings", DataTable).loading = True
        else:
            self._render_diagnosis(self.diagnosis)

    def show_diagnosis(
        self,
        diagnosis: Diagnosis,
        playbooks: dict[str, Playbook],
        playbook_error: str | None = None,
        *,
        log_summary: LogSummary | None = None,
    ) -> None:
        """Render a finished scan and keep `playbooks` for the finding screens.

        `log_summary` is the per-minute series of the scan's access-log entries;
        without it the error-rate chart stays hidden.
        """
        self.diagnosis = diagnosis
        self.playbooks = playbooks
        self.playbook_error = playbook_error
        self.log_summary = log_summary
        if self.is_mounted:
            self._render_diagnosis(diagnosis)

    def _render_diagnosis(self, diagnosis: Diagnosis) -> None:
        self.query_one("#sources", Static).update(formatting.sources_line(self.paths, diagnosis))

        banner = self.query_one("#banner", Static)
        if diagnosis.coverage.not_checked:
            banner.update(formatting.coverage_banner(diagnosis.coverage.not_checked))
            banner.add_class("-shown")
        else:
            banner.remove_class("-shown")

        self.query_one("#symptoms", Static).update(self._symptoms_table(diagnosis))
        self.call_later(self._render_chart, self.log_summary)
        self.query_one("#problems", Static).update(formatting.problems_line(diagnosis))

        table = self.query_one("#findings", DataTable)
        table.loading = False
        self.apply_filter(self.query_one(FilterInput).value)
        # The first fill may run before the table's first layout; refill with its real width.
        self.call_after_refresh(self._fill_findings)
        table.focus()
        self.refresh_bindings()

    def _symptoms_table(self, diagnosis: Diagnosis) -> Table | str:
        if not diagnosis.symptoms:
            return "No symptom was found in the inputs."
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column()
        for symptom in diagnosis.symptoms:
            table.add_row(
                Text(symptom.title),
                Text(f"×{symptom.count}"),
                Text(formatting.time_range(symptom.first_seen, symptom.last_seen)),
            )
        return table

    async def _render_chart(self, summary: LogSummary | None) -> None:
        shown = summary is not None and bool(summary.minutes())
        self.query_one("#chart-box").set_class(shown, "-shown")
        chart = self.query_one("#error-chart", ErrorRateChart)
        chart.can_focus = shown
        if not shown:
            return
        await chart.show_summary(summary)
        self._show_window(*chart.window)

    def on_error_rate_chart_window_changed(self, message: ErrorRateChart.WindowChanged) -> None:
        message.stop()
        self._show_window(message.first_minute, message.last_minute)

    def _show_window(self, first_minute: str, last_minute: str) -> None:
        """Total the entries and failures of the minutes from `first_minute` to `last_minute`."""
        if self.log_summary is None:
            return
        entries = failing = 0
        for minute, total, failed in self.log_summary.error_rate():
            if first_minute <= minute <= last_minute:
                entries += total
                failing += failed
        share = f" ({failing / entries:.1%})" if entries else ""
        self.query_one("#chart-window", Static).update(
            f"In the window: {entries} entries, {failing} failing{share}")

    def apply_filter(self, needle: str) -> None:
        self._needle = needle
        self._fill_findings()

    def on_resize(self) -> None:
        # Sizes are final only after the layout that follows this event.
        self.call_after_refresh(self._fill_findings)

    def _fill_findings(self) -> None:
        """Rebuild the findings table for the current filter and screen width."""
        if self.diagnosis is None:
            return
        table = self.query_one("#findings", DataTable)
        cursor_key = _cursor_key(table)
        table.clear(columns=True)
        # The table has a margin of one cell on each side (app.tcss).
        widths = (2, 9, 5, _cause_width(row_width(table, self.app.size.width - 2)))
        for label, width in zip(FINDING_COLUMNS, widths):
            table.add_column(label, key=label, width=width)

        for rank, finding in enumerate(self.diagnosis.findings, start=1):
            if not formatting.finding_matches(finding, self._needle):
                continue
            ruled_out = finding.status is CauseStatus.RULED_OUT
            cause = Text(finding.title, no_wrap=True, overflow="ellipsis",
                         style="dim" if ruled_out else "")
            cause.append("\n")
            cause.append(formatting.chain_text(finding.chain), style="dim")
            table.add_row(
                Text(str(rank)),
                formatting.status_text(finding.status),
                Text(formatting.score_text(finding.score)),
                cause,
                key=finding.cause_id,
                height=2,
            )
        if cursor_key is not None and cursor_key in table.rows:
            table.move_cursor(row=table.get_row_index(cursor_key), animate=False)

    def focus_results(self) -> None:
        self.query_one("#findings", DataTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("open_finding", "coverage", "problems", "inputs"):
            return self.diagnosis is not None
        return super().check_action(action, parameters)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._open_finding(event.row_key.value)

    def action_open_finding(self) -> None:
        table = self.query_one("#findings", DataTable)
        if table.row_count == 0:
            return
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        self._open_finding(row_key.value)

    def _open_finding(self, cause_id: str | None) -> None:
        if self.diagnosis is None or cause_id is None:
            return
        for finding in self.diagnosis.findings:
            if finding.cause_id == cause_id:
                playbook = self.playbooks.get(finding.playbook) if finding.playbook else None
                self.app.push_screen(FindingScreen(
                    finding, self.diagnosis, playbook=playbook, playbook_error=self.playbook_error
                ))
                return

    def action_coverage(self) -> None:
        if self.diagnosis is not None:
            self.app.push_screen(CoverageScreen(self.diagnosis))

    def action_problems(self) -> None:
        if self.diagnosis is not None:
            self.app.push_screen(ProblemsScreen(self.diagnosis))

    def action_inputs(self) -> None:
        if self.diagnosis is not None:
            self.app.push_screen(EvidenceScreen(self.diagnosis))


def _cause_width(rows_width: int) -> int:
    """Give the cause column the width the rank, status and score columns leave."""
    # "#", status and score take 2 + 9 + 5 cells, and four columns pad 2 cells each.
    return max(rows_width - (2 + 9 + 5) - 4 * 2, 24)


def _cursor_key(table: DataTable) -> str | None:
    if table.row_count == 0:
        return None
    row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
    return row_key.value
