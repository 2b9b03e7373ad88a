"""The fault picker of `mesh-doctor lab practice`: choose a lab fault, or a random one kept hidden.

The picker is an app of its own that exits with the chosen fault's name,
or `RANDOM`. The practice command then reproduces the fault and opens the
usual Mesh Doctor screens on the capture, as for a real incident.
"""

from __future__ import annotations

from typing import Sequence

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

RANDOM = "random"


class LabPickerApp(App[str | None]):
    """A list of the lab's faults; enter picks one, q leaves without a fault."""

    TITLE = "Mesh Doctor lab"
    SUB_TITLE = "pick a fault to practise on"
    BINDINGS = [Binding("q", "quit_without_fault", "Quit"), Binding("r", "pick_random", "Random, hidden")]
    CSS = """
    #intro { padding: 1 2; }
    OptionList { height: 1fr; margin: 0 2; }
    """

    def __init__(self, faults: Sequence[tuple[str, str, str]]) -> None:
        """`faults` lists (name, number in the lab's list, title) in the order to show."""
        super().__init__()
        self.faults = list(faults)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Enter injects the selected fault into a real Envoy mesh on 127.0.0.1 and opens the "
                     "diagnosis of its capture. r picks a random fault and keeps its name hidden "
                     "until you leave the diagnosis.", id="intro")
        options = [Option("random fault, name hidden (practice)", id=RANDOM)]
        options += [Option(f"{group:>3}  {name:<22} {title}", id=name) for name, group, title in self.faults]
        yield OptionList(*options)
        yield Footer()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.exit(event.option.id)

    def action_pick_random(self) -> None:
        self.exit(RANDOM)

    def action_quit_without_fault(self) -> None:
        self.exit(None)
