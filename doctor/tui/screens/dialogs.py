"""Modal dialogs: the error dialog every worker failure ends in, and the key help."""

from __future__ import annotations

from typing import Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


READ_ONLY_NOTE = ("Every key only reads: nothing here changes the cluster or the input files. "
                  "esc closes this help.")


class ErrorDialog(ModalScreen[None]):
    """A failure the engineer must see: a title, the message, and a button to close it."""

    BINDINGS = [
        Binding("escape,enter", "dismiss_dialog", "Close"),
    ]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.error_title = title
        self.error_message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="error-dialog"):
            yield Static(self.error_title, id="error-title", markup=False)
            with VerticalScroll(id="error-body"):
                yield Static(Text(self.error_message), id="error-message")
            yield Button("Close", variant="error", id="error-close")

    def on_mount(self) -> None:
        self.query_one("#error-close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_dismiss_dialog(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """The keys that work on the screen the help was opened from, with what each does."""

    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss_help", "Close"),
    ]

    def __init__(self, screen_name: str, keys: Iterable[tuple[str, str]], *,
                 note: str = READ_ONLY_NOTE) -> None:
        super().__init__()
        self.screen_name = screen_name
        self.keys = list(keys)
        self.note = note

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, description in self.keys:
            table.add_row(Text(key), Text(description))

        with Vertical(id="help-dialog"):
            yield Static(f"Keys — {self.screen_name}", id="help-title", markup=False)
            with VerticalScroll(id="help-body"):
                yield Static(table, id="help-keys")
            yield Static(self.note, id="help-note")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
