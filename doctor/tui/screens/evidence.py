"""The evidence browser: every input with its kind, and one file with line numbers."""

from __future__ import annotations

import logging

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Static

from doctor.diagnosis import Diagnosis
from doctor.tui import formatting
from doctor.tui.messages import SourceLoaded, WorkFailed
from doctor.tui.screens.base import DoctorScreen
from doctor.tui.sources import MAX_READ_BYTES, read_source_lines
from doctor.tui.widgets import FilterInput, SourceView, row_width

logger = logging.getLogger(__name__)

SKIPPED_KIND = "skipped"


class EvidenceScreen(DoctorScreen):
    """Inputs on the left, the selected file on the right, scrolled to the requested line."""

    SCREEN_NAME = "Evidence browser"

    def __init__(self, diagnosis: Diagnosis, source: str | None = None, line: int | None = None) -> None:
        super().__init__()
        self.diagnosis = diagnosis
        self.initial_source = source
        self.initial_line = line
        self._requested: str | None = None
        self._root = formatting.source_root(diagnosis)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="browser"):
            yield DataTable(id="inputs", cursor_type="row")
            with Vertical(id="viewer"):
                yield Static("Select an input to read it.", id="viewer-title", markup=False)
                yield SourceView(id="source")
        yield FilterInput("filter lines of this file; enter keeps it, escape clears")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "inputs"
        self._fill_inputs()
        # The first fill runs before the list's first layout; refill with its real width.
        self.call_after_refresh(self._fill_inputs)

        table = self.query_one("#inputs", DataTable)
        source = self.initial_source
        if source is None and table.row_count:
            source = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        if source is not None:
            table.move_cursor(row=table.get_row_index(source))
            self.open_source(source, self.initial_line)
            self.query_one(SourceView).focus()
        else:
            table.focus()

    def on_resize(self) -> None:
        # Sizes are final only after the layout that follows this event.
        self.call_after_refresh(self._fill_inputs)

    def _fill_inputs(self) -> None:
        """List every input with its kind and fact count, and every skipped input with the reason."""
        rows: list[tuple[str, str]] = [
            (item.source, f"{item.kind} · {formatting.plural(item.facts, 'fact')}")
            for item in self.diagnosis.inputs
        ]
        listed = {source for source, _ in rows}
        for skipped in self.diagnosis.skipped:
            if skipped.source not in listed:
                rows.append((skipped.source, f"{SKIPPED_KIND}: {skipped.reason}"))
                listed.add(skipped.source)
        if self.initial_source is not None and self.initial_source not in listed:
            rows.append((self.initial_source, "cited by a finding"))

        table = self.query_one("#inputs", DataTable)
        # The list takes 40% of the screen and at most 60 cells, less its
        # border (app.tcss). Its one column pads one cell on each side.
        estimate = min(self.app.size.width * 2 // 5, 60) - 1
        width = max(row_width(table, estimate) - 1 - 2, 12)
        cursor_row = table.cursor_row
        table.clear(columns=True)
        table.add_column(f"Input ({len(rows)})", key="source", width=width)
        for source, detail in rows:
            name = formatting.shorten_middle(formatting.short_source(source, self._root), width)
            cell = Text(name)
            cell.append(f"\n{detail}", style="dim")
            table.add_row(cell, key=source, height=2)
        if table.row_count:
            row = min(cursor_row, table.row_count - 1)
            table.move_cursor(row=row, animate=False)
            # Scrolling needs the new rows laid out, which happens on the next refresh.
            table.call_after_refresh(_scroll_to_cursor, table)

    def open_source(self, source: str, line: int | None = None) -> None:
        """Read `source` in a worker and show it, highlighting `line` (1-based) if given."""
        self._requested = source
        name = formatting.short_source(source, self._root)
        self.query_one("#viewer-title", Static).update(f"Reading {name} …")
        self._read_source(source, line)

    @work(thread=True, exclusive=True, group="source", exit_on_error=False)
    def _read_source(self, source: str, line: int | None) -> None:
        try:
            lines, truncated = read_source_lines(source)
        except OSError as error:
            reason = error.strerror or str(error)
            logger.warning("reading %s failed: %s", source, reason)
            self.post_message(
                WorkFailed(
                    "Could not open the input",
                    f"{source}: {reason}. Check that the file still exists and is readable.",
                )
            )
            return
        except Exception as error:  # a bug: report it rather than leave the viewer empty
            logger.exception("reading %s failed", source)
            self.post_message(WorkFailed("Could not open the input", f"{source}: {error!r}"))
            return
        self.post_message(SourceLoaded(source, lines, line, truncated))

    def on_source_loaded(self, message: SourceLoaded) -> None:
        if message.source != self._requested:
            return
        view = self.query_one(SourceView)
        view.show(message.source, message.lines, target=message.line)

        name = formatting.short_source(message.source, self._root)
        title = f"{name} — {formatting.plural(len(message.lines), 'line')}"
        if message.line is not None:
            title = f"{title}, line {message.line} highlighted"
        if message.truncated:
            title = f"{title} (first {MAX_READ_BYTES // (1024 * 1024)} MiB only)"
        self.query_one("#viewer-title", Static).update(title)

        filter_input = self.query_one(FilterInput)
        if filter_input.value:
            view.set_filter(filter_input.value)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.cursor_row != event.data_table.cursor_row:
            return  # stale: the cursor moved on before this message arrived
        source = event.row_key.value
        if source is not None and source != self._requested:
            self.open_source(str(source))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.query_one(SourceView).focus()

    def apply_filter(self, needle: str) -> None:
        self.query_one(SourceView).set_filter(needle)

    def focus_results(self) -> None:
        self.query_one(SourceView).focus()


def _scroll_to_cursor(table: DataTable) -> None:
    table.move_cursor(row=table.cursor_row, animate=False)
