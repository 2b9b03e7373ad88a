"""Behaviour every full screen shares: `escape` goes back and `/` opens a filter."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input

from doctor.tui.widgets import FilterInput


class DoctorScreen(Screen[None]):
    """A full screen whose `escape` first closes its filter, then returns to the previous screen.

    A subclass that composes a `FilterInput` gets `/` filtering by overriding
    `apply_filter` and `focus_results`.
    """

    SCREEN_NAME: ClassVar[str] = "Screen"
    """The name the help dialog shows for this screen."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("slash", "filter", "Filter"),
    ]

    def apply_filter(self, needle: str) -> None:
        """Show only the rows that contain `needle`; an empty needle shows all."""

    def focus_results(self) -> None:
        """Move the focus from the filter back to the filtered widget."""

    def _filter_input(self) -> FilterInput | None:
        found = self.query(FilterInput)
        return found.first() if found else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter":
            return self._filter_input() is not None
        if action == "back":
            return self._filter_active() or len(self.app.screen_stack) > 1
        return True

    def _filter_active(self) -> bool:
        filter_input = self._filter_input()
        return filter_input is not None and (filter_input.is_open or bool(filter_input.value))

    def action_filter(self) -> None:
        filter_input = self._filter_input()
        if filter_input is not None:
            filter_input.open()
            self.refresh_bindings()

    def action_back(self) -> None:
        filter_input = self._filter_input()
        if filter_input is not None and self._filter_active():
            filter_input.close()
            self.apply_filter("")
            self.focus_results()
            self.refresh_bindings()
            return
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def on_input_changed(self, event: Input.Changed) -> None:
        if isinstance(event.input, FilterInput):
            self.apply_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if isinstance(event.input, FilterInput):
            self.focus_results()
