"""One finding: its causal chain, the evidence for and against, the checks and the remedy."""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from doctor.diagnosis import CheckOutcome, Diagnosis, Finding, NotChecked
from doctor.model import Evidence
from doctor.playbooks import Playbook
from doctor.redact import redact_text
from doctor.tui import formatting
from doctor.tui.screens.base import DoctorScreen
from doctor.tui.screens.evidence import EvidenceScreen
from doctor.tui.widgets import FilterInput, row_width

EVIDENCE_COLUMNS = ("Location", "Cited line and note")
EMPTY_EVIDENCE = {
    "evidence-for": "No evidence for this cause was found in the inputs.",
    "evidence-against": "No evidence against this cause was found in the inputs.",
}


class FindingScreen(DoctorScreen):
    """The proof behind one ranked cause, and what to do about it."""

    SCREEN_NAME = "Finding"

    BINDINGS = [
        Binding("enter", "open_evidence", "Open line", show=False),
        Binding("r", "remediation", "Remediation"),
        Binding("i", "inputs", "Inputs"),
        Binding("g", "guide", "Guided session"),
    ]

    def __init__(
        self,
        finding: Finding,
        diagnosis: Diagnosis,
        *,
        playbook: Playbook | None = None,
        playbook_error: str | None = None,
    ) -> None:
        super().__init__()
        self.finding = finding
        self.diagnosis = diagnosis
        self.playbook = playbook
        self.playbook_error = playbook_error
        self.supporting = [item for item in finding.evidence if item.supports]
        self.opposing = [item for item in finding.evidence if not item.supports]
        self._needle = ""

    def compose(self) -> ComposeResult:
        finding = self.finding
        yield Header()
        with VerticalScroll(id="finding"):
            yield Static(self._heading(), id="finding-title")
            if finding.summary:
                yield Static(finding.summary, id="finding-summary", markup=False)

            yield Static("Causal chain (symptom → … → cause)", classes="section-title")
            yield Static(self._chain(), id="chain")

            yield Static("Evidence for — enter opens the line", classes="section-title")
            yield DataTable(id="evidence-for", cursor_type="row", classes="evidence")
            yield Static(EMPTY_EVIDENCE["evidence-for"], id="evidence-for-empty", classes="empty",
                         markup=False)
            yield Static("Evidence against", classes="section-title")
            yield DataTable(id="evidence-against", cursor_type="row", classes="evidence")
            yield Static(EMPTY_EVIDENCE["evidence-against"], id="evidence-against-empty",
                         classes="empty", markup=False)

            yield Static("Checks that ran", classes="section-title")
            yield Static(self._checks_ran(), id="checks-ran")
            yield Static("Checks that could not run", classes="section-title")
            yield Static(self._checks_not_run(), id="checks-not-run")

            yield Static("Remediation", classes="section-title", id="remediation-title")
            yield Static(finding.remediation or "The rule gives no remediation text.",
                         id="remediation", markup=False)
            yield Static(self._playbook(), id="playbook")
        yield FilterInput("filter evidence lines; enter keeps it, escape clears")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.finding.cause_id
        self.apply_filter("")
        # The heading and the chain stay in view, above the focused evidence.
        self._focus_evidence(scroll_visible=False)
        # The first fill runs before the tables' first layout; refill with their real width.
        self.call_after_refresh(self._fill_evidence_tables)

    def _heading(self) -> Text:
        finding = self.finding
        text = formatting.status_text(finding.status)
        text.append(f"  score {formatting.score_text(finding.score)}  ", style="dim")
        text.append(finding.title, style="bold")
        return text

    def _chain(self) -> Table:
        """Lay out the chain one step a line, each deeper step indented under the one it explains."""
        labels = formatting.chain_labels(self.diagnosis)
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column(style="dim")
        for depth, step in enumerate(self.finding.chain):
            name = Text("  " * depth + ("↳ " if depth else ""))
            name.append(step, style="bold" if step == self.finding.cause_id else "")
            table.add_row(name, Text(labels.get(step, "")))
        return table

    def _checks_ran(self) -> Table | str:
        ran = [outcome for outcome in self.finding.checks if outcome.result != "unknown"]
        if not ran:
            return "No check could run on the inputs read."
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column()
        for outcome in ran:
            table.add_row(
                Text(outcome.result, style=formatting.CHECK_RESULT_STYLES.get(outcome.result, "")),
                Text(outcome.role.replace("_", " ")),
                Text(outcome.check_id),
                Text(_outcome_detail(outcome)),
            )
        return table

    def _checks_not_run(self) -> Table | str:
        missing = _not_run(self.finding, self.diagnosis.coverage.not_checked)
        if not missing:
            return "Every check of this cause ran."
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True, style="cyan")
        table.add_column()
        for check_id, reason in missing:
            table.add_row(Text(check_id), Text(reason))
        return table

    def _playbook(self) -> RenderableType:
        finding = self.finding
        if self.playbook is not None:
            return formatting.playbook_view(self.playbook)
        if finding.playbook is None:
            return Text("This cause has no playbook.", style="dim")
        if self.playbook_error:
            return Text(
                f"Playbook {finding.playbook} could not be loaded: {self.playbook_error}",
                style="red",
            )
        return Text(f"Playbook {finding.playbook} is not among the installed playbooks.",
                    style="yellow")

    def apply_filter(self, needle: str) -> None:
        self._needle = needle
        self._fill_evidence_tables()

    def on_resize(self) -> None:
        # Sizes are final only after the layout that follows this event.
        self.call_after_refresh(self._fill_evidence_tables)

    def _fill_evidence_tables(self) -> None:
        """Rebuild both evidence tables for the current filter and screen width."""
        folded = self._needle.casefold()
        root = formatting.source_root(self.diagnosis)
        for table_id, items in (("evidence-for", self.supporting),
                                ("evidence-against", self.opposing)):
            locations = [formatting.short_source(formatting.evidence_location(item), root)
                         for item in items]
            table = self.query_one(f"#{table_id}", DataTable)
            # The table has a margin of one cell on each side, and the page a scrollbar.
            rows_width = row_width(table, self.app.size.width - 2 - 2)
            location_width, text_width = _evidence_widths(locations, rows_width)

            table.clear(columns=True)
            for label, width in zip(EVIDENCE_COLUMNS, (location_width, text_width)):
                table.add_column(label, key=label, width=width)
            for index, (item, where) in enumerate(zip(items, locations)):
                if folded and folded not in _evidence_haystack(item):
                    continue
                cited = Text(redact_text(item.text.strip()), no_wrap=True, overflow="ellipsis")
                if item.note:
                    cited.append("\n")
                    cited.append(item.note, style="dim italic")
                table.add_row(
                    Text(formatting.shorten_middle(where, location_width)),
                    cited,
                    key=str(index),
                    height=2 if item.note else 1,
                )

            empty = self.query_one(f"#{table_id}-empty", Static)
            table.display = table.row_count > 0
            empty.display = table.row_count == 0
            if self._needle and items:
                empty.update("No evidence line matches the filter.")
            else:
                empty.update(EMPTY_EVIDENCE[table_id])

    def focus_results(self) -> None:
        self._focus_evidence(scroll_visible=True)

    def _focus_evidence(self, *, scroll_visible: bool) -> None:
        for table_id in ("evidence-for", "evidence-against"):
            table = self.query_one(f"#{table_id}", DataTable)
            if table.display:
                table.focus(scroll_visible=scroll_visible)
                return

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._open_row(event.data_table, event.cursor_row)

    def action_open_evidence(self) -> None:
        focused = self.focused
        if isinstance(focused, DataTable) and focused.row_count:
            self._open_row(focused, focused.cursor_row)

    def _open_row(self, table: DataTable, row: int) -> None:
        items = self.supporting if table.id == "evidence-for" else self.opposing
        row_key, _ = table.coordinate_to_cell_key((row, 0))
        item = items[int(row_key.value or 0)]
        self.app.push_screen(EvidenceScreen(self.diagnosis, item.source, item.line))

    def action_inputs(self) -> None:
        self.app.push_screen(EvidenceScreen(self.diagnosis))

    def action_guide(self) -> None:
        """Walk this finding's playbook step by step in a guided session."""
        self.app.start_session(self.finding)

    def action_remediation(self) -> None:
        """Scroll the remediation to the top and focus the page, so arrows and pgdn scroll on."""
        page = self.query_one("#finding", VerticalScroll)
        page.focus()
        page.scroll_to_widget(self.query_one("#remediation-title"), top=True, animate=False)


def _outcome_detail(outcome: CheckOutcome) -> str:
    parts = []
    if outcome.evidence:
        parts.append(formatting.plural(len(outcome.evidence), "line") + " cited")
    if outcome.reason:
        parts.append(outcome.reason)
    return "; ".join(parts)


def _not_run(finding: Finding, not_checked: tuple[NotChecked, ...]) -> list[tuple[str, str]]:
    """List the checks of `finding` that could not run, each once, with the reason."""
    missing: list[tuple[str, str]] = []
    for outcome in finding.checks:
        if outcome.result == "unknown":
            missing.append((outcome.check_id, outcome.reason))
    for item in not_checked:
        if item.cause_id == finding.cause_id and (item.check_id, item.reason) not in missing:
            missing.append((item.check_id, item.reason))
    return missing


def _evidence_widths(locations: list[str], rows_width: int) -> tuple[int, int]:
    """Size the location and cited-line columns so a table fits its width without scrolling."""
    location_width = min(max((len(where) for where in locations), default=8), rows_width // 3)
    # Each column pads one cell on both sides.
    text_width = rows_width - location_width - 2 * 2
    return location_width, max(text_width, 16)


def _evidence_haystack(item: Evidence) -> str:
    return " ".join((item.source, str(item.line or ""), item.text, item.note)).casefold()
