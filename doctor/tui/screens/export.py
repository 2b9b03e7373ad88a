"""The export dialog: a preview of the incident summary, a format choice and what was masked.

The dialog only shows; the app's worker built the summary before it opened
and writes the file after it closes with the chosen format.
"""

from __future__ import annotations

from typing import Any, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from doctor.summary_render import render

FORMAT_NAMES = {"md": "Markdown", "json": "JSON", "html": "HTML"}
PREVIEW_CHARACTERS = 20000


def masked_text(data: Mapping[str, Any]) -> str:
    """Say what redaction masked in the summary, by kind, or that nothing needed it."""
    masked = data.get("redactions") or {}
    if not masked:
        return "Masked before export: nothing needed masking."
    return "Masked before export: " + ", ".join(
        f"{count} line(s) with {kind}" for kind, count in masked.items()) + "."


class ExportScreen(ModalScreen[str | None]):
    """Preview the summary in the chosen format; enter writes it, esc cancels."""

    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    #export-dialog { width: 90%; height: 90%; padding: 1 2; border: thick $accent;
                     background: $surface; }
    #export-title { text-style: bold; }
    #export-masked { color: $warning; margin-bottom: 1; }
    #export-preview { height: 1fr; border: round $panel; }
    #export-keys { color: $text-muted; }
    """

    BINDINGS = [
        Binding("m", "choose('md')", "Markdown"),
        Binding("j", "choose('json')", "JSON"),
        Binding("h", "choose('html')", "HTML"),
        Binding("enter,w", "write", "Write file"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, data: Mapping[str, Any], directory: str, output_format: str = "md") -> None:
        super().__init__()
        self.data = data
        self.directory = directory
        self.output_format = output_format

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog"):
            yield Static(f"Export the incident summary to {self.directory}", id="export-title",
                         markup=False)
            yield Static(id="export-formats")
            yield Static(Text(masked_text(self.data)), id="export-masked")
            with VerticalScroll(id="export-preview"):
                yield Static(id="export-text")
            yield Static("m Markdown · j JSON · h HTML · enter write · esc cancel",
                         id="export-keys", markup=False)

    def on_mount(self) -> None:
        self._show()

    def action_choose(self, output_format: str) -> None:
        self.output_format = output_format
        self._show()

    def action_write(self) -> None:
        self.dismiss(self.output_format)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def preview_text(self) -> str:
        """Return what the preview shows: the file's text, or the Markdown for HTML."""
        shown = "md" if self.output_format == "html" else self.output_format
        text = render(self.data, shown)
        if self.output_format == "html":
            text = ("The HTML file contains this content with an error-rate chart and a causal-chain "
                    "diagram. It needs no network.\n\n" + text)
        if len(text) > PREVIEW_CHARACTERS:
            text = text[:PREVIEW_CHARACTERS] + "\n… (the file contains the rest)"
        return text

    def _show(self) -> None:
        choices = Text()
        for key, name in FORMAT_NAMES.items():
            style = "reverse bold" if key == self.output_format else ""
            choices.append(f" {name} ", style=style)
            choices.append(" ")
        self.query_one("#export-formats", Static).update(choices)
        self.query_one("#export-text", Static).update(Text(self.preview_text()))
        self.query_one("#export-preview", VerticalScroll).scroll_home(animate=False)
